"""CIFAR-100 adversarial training (PGD-AT or TRADES) of a SpectralViT with MSVP.

    python recipes/cifar100_adv.py --output_dir=runs/c100_pgd_at
    python recipes/cifar100_adv.py --dataset=/data/cifar100-folders --config=quick

TFDS cifar100 downloads on first use; offline, pass a folder or archive with
train/<class>/ and test/<class>/ sub-folders. Every flag: `--helpfull`.
"""

try:
    from recipes import common
except ImportError:  # run as a script: python recipes/cifar100_adv.py
    import common

NAME = "cifar100_adv"
DEFAULTS = {"dataset": "cifar100", "preset": "vit_base_patch4_32", "method": "pgd_at"}
CONFIGS = {
    "quick": {k: v for k, v in common.QUICK.items() if k != "dataset"},
    "smoke": {k: v for k, v in common.SMOKE.items() if k != "dataset"},
}

if __name__ == "__main__":
    common.start(NAME, DEFAULTS, CONFIGS)
