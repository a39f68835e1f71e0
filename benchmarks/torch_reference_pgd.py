"""Reference timing: a plain PyTorch PGD-10 loop on a same-size PyTorch ViT (CPU).

The attack-speed issue compares our PGD with "the official PyTorch loop". This
script measures that loop here instead of quoting a number: the usual eager
PyTorch PGD (``torch.autograd.grad`` of the summed cross-entropy w.r.t. the input,
sign step, projection and clip, in a Python ``for`` loop, as in the SpecFormer and
AutoAttack code bases) against a PyTorch ViT with the same shape and FLOPs as
``benchmarks/attack_speed.py``'s SpectralViT: patch 4 at 32x32 (64 tokens + class
token), hidden 192, depth 6, 3 heads, MLP 384, pre-norm blocks, GELU, LayerNorm
eps 1e-6. Weights are random (speed does not depend on them).

It needs PyTorch, which is not a dependency of this package; run it in a separate
environment (on the development machine: ``pip install torch==2.13.0 numpy``).
``attack_speed.py`` runs it automatically when ``torch`` imports and prints its row
beside ours.

Usage:
    python benchmarks/torch_reference_pgd.py --repeats 3 --batch_size 128
"""

import argparse
import json
import statistics
import time

EPS, STEP, STEPS = 8 / 255, 2 / 255, 10


def build_vit(torch):
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, dim, heads, mlp):
            super().__init__()
            self.norm1 = nn.LayerNorm(dim, eps=1e-6)
            self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
            self.norm2 = nn.LayerNorm(dim, eps=1e-6)
            self.mlp = nn.Sequential(
                nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim)
            )

        def forward(self, x):
            h = self.norm1(x)
            x = x + self.attn(h, h, h, need_weights=False)[0]
            return x + self.mlp(self.norm2(x))

    class ViT(nn.Module):
        def __init__(self, dim=192, depth=6, heads=3, mlp=384, patch=4, classes=10):
            super().__init__()
            self.patch = nn.Conv2d(3, dim, patch, stride=patch)
            self.cls = nn.Parameter(torch.zeros(1, 1, dim))
            self.pos = nn.Parameter(torch.randn(1, (32 // patch) ** 2 + 1, dim) * 0.02)
            self.blocks = nn.Sequential(*[Block(dim, heads, mlp) for _ in range(depth)])
            self.norm = nn.LayerNorm(dim, eps=1e-6)
            self.head = nn.Linear(dim, classes)

        def forward(self, x):
            x = self.patch(x).flatten(2).transpose(1, 2)
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
            return self.head(self.norm(self.blocks(x))[:, 0])

    return ViT().eval()


def pgd_loop(torch, model, x, y):
    """Eager PGD Linf with random start, the usual PyTorch reference loop."""
    delta = torch.empty_like(x).uniform_(-EPS, EPS)
    x_adv = (x + delta).clamp(0, 1)
    for _ in range(STEPS):
        x_adv.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(x_adv), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_adv)
        with torch.no_grad():
            x_adv = x_adv + STEP * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - EPS), x + EPS).clamp(0, 1)
    return x_adv.detach()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one RESULT line")
    args = parser.parse_args()
    import torch

    torch.manual_seed(0)
    model = build_vit(torch)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    x = torch.rand(args.batch_size, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch_size,))

    def timed():
        start = time.perf_counter()
        pgd_loop(torch, model, x, y)
        return time.perf_counter() - start

    first = timed()
    runs = [timed() for _ in range(args.repeats)]
    name = f"torch {torch.__version__} eager loop"
    result = {
        name: {"median_s": statistics.median(runs), "runs": runs, "first_call_s": first}
    }
    if args.json:
        print("RESULT " + json.dumps(result))
    else:
        print(
            f"{name}: {statistics.median(runs):.2f} s/batch (median of {args.repeats}; "
            f"first call {first:.2f} s; threads {torch.get_num_threads()})"
        )


if __name__ == "__main__":
    main()
