"""Imagenette adversarial training (PGD-AT or TRADES) of a SpectralViT with MSVP.

224x224 images, DeiT-S-like ViT/16, eps 4/255 as usual on ImageNet-scale data:

    python recipes/imagenette_adv.py --output_dir=runs/imagenette_pgd_at

TFDS imagenette downloads on first use; offline, pass a folder or archive with
train/<class>/ and test/ (or val/) sub-folders. Every flag: `--helpfull`.
"""

try:
    from recipes import common
except ImportError:  # run as a script: python recipes/imagenette_adv.py
    import common

NAME = "imagenette_adv"
DEFAULTS = {
    "dataset": "imagenette",
    "preset": "vit_small_patch16_224",
    "method": "pgd_at",
    "image_size": 224,
    "eps": "4/255",
    "step_size": "1/255",
    "eval_eps": "4/255",
    "curve_eps": ["0", "1/255", "2/255", "4/255", "8/255", "64/255"],
    "batch_size": 64,
    "optimizer": "adamw",
    "learning_rate": 5e-4,
    "weight_decay": 0.05,
    "warmup_epochs": 5,
    "eval_batch_size": 64,
}
CONFIGS = {
    "quick": dict(
        {k: v for k, v in common.QUICK.items() if k != "dataset"},
        image_size=64,
        model_override=[
            "patch_size=8",
            "hidden_dim=32",
            "depth=2",
            "num_heads=2",
            "mlp_dim=64",
        ],
    ),
    "smoke": dict(
        {k: v for k, v in common.SMOKE.items() if k != "dataset"}, image_size=32
    ),
}

if __name__ == "__main__":
    common.start(NAME, DEFAULTS, CONFIGS)
