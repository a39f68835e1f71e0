"""CIFAR-10 adversarial training (PGD-AT or TRADES) of a SpectralViT with MSVP.

Quick run on a CPU (small model, 2,000-image subset, a few epochs; uses the
CIFAR-10 JPEG archive at ../shared/data/cifar10-jpeg.tar.gz when --dataset is
not given):

    python recipes/cifar10_adv.py --config=quick

Paper-scale run for a GPU/TPU (ViT-B/4, 40 epochs, PGD-10 at eps 8/255, penalty
1e-5 on query/key/value; TFDS cifar10 downloads on first use):

    python recipes/cifar10_adv.py --backend=jax --output_dir=runs/c10_pgd_at
    python recipes/cifar10_adv.py --method=trades --penalty=1e-5,1e-5,1e-5

Every flag: `python recipes/cifar10_adv.py --helpfull`. Rerunning the same
command after an interruption resumes from the last finished epoch.
"""

try:
    from recipes import common
except ImportError:  # run as a script: python recipes/cifar10_adv.py
    import common

NAME = "cifar10_adv"
DEFAULTS = {"dataset": "cifar10", "preset": "vit_base_patch4_32", "method": "pgd_at"}
CONFIGS = {"quick": common.QUICK, "smoke": common.SMOKE}

if __name__ == "__main__":
    common.start(NAME, DEFAULTS, CONFIGS)
