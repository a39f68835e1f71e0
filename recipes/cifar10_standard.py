"""CIFAR-10 standard (clean) training of a SpectralViT with MSVP, attacked at small eps.

As in the paper's clean-training experiments, robustness is reported at small
budgets (eps 1/255 for results.json; the accuracy-vs-eps plot sweeps 0..4/255).

    python recipes/cifar10_standard.py --config=quick
    python recipes/cifar10_standard.py --preset=vit_small_patch4_32 --penalty=1e-5

Every flag: `python recipes/cifar10_standard.py --helpfull`.
"""

try:
    from recipes import common
except ImportError:  # run as a script: python recipes/cifar10_standard.py
    import common

NAME = "cifar10_standard"
DEFAULTS = {
    "dataset": "cifar10",
    "preset": "vit_small_patch4_32",
    "method": "standard",
    "eval_eps": "1/255",
    "curve_eps": ["0", "0.5/255", "1/255", "2/255", "4/255", "64/255"],
}
CONFIGS = {
    "quick": dict(
        common.QUICK,
        method="standard",
        eval_eps="1/255",
        curve_eps=["0", "1/255", "2/255", "4/255", "64/255"],
    ),
    "smoke": dict(common.SMOKE, method="standard", eval_eps="1/255"),
}

if __name__ == "__main__":
    common.start(NAME, DEFAULTS, CONFIGS)
