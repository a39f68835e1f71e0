"""Named `SpectralViT` architectures (one table, no copied constructors).

The 32x32 presets use patch 4 (64 tokens), the 224x224 presets patch 16
(196 tokens); tiny/small/base follow DeiT's widths. `vit_micro_patch4_32` is a
CPU-sized model for quick runs and tests.
"""

_WIDTHS = {
    # name: (hidden_dim, depth, num_heads, mlp_dim)
    "micro": (64, 4, 4, 128),
    "tiny": (192, 12, 3, 768),
    "small": (384, 12, 6, 1536),
    "base": (768, 12, 12, 3072),
}

PRESETS = {}
for _size, (_hidden, _depth, _heads, _mlp) in _WIDTHS.items():
    for _patch, _image, _classes in ((4, 32, 10), (16, 224, 1000)):
        if _size == "micro" and _image != 32:
            continue
        PRESETS[f"vit_{_size}_patch{_patch}_{_image}"] = {
            "image_size": _image,
            "patch_size": _patch,
            "num_classes": _classes,
            "hidden_dim": _hidden,
            "depth": _depth,
            "num_heads": _heads,
            "mlp_dim": _mlp,
        }


def get_preset(name):
    """Returns a copy of the constructor arguments of preset `name`.

    Args:
        name: A key of `PRESETS`, e.g. `"vit_tiny_patch4_32"`.

    Returns:
        A new dict of `SpectralViT` constructor arguments.

    Raises:
        ValueError: If `name` is not a preset (the message lists them).

    Example:

    ```python
    from specformer_keras.models.presets import get_preset

    assert get_preset("vit_tiny_patch4_32")["hidden_dim"] == 192
    ```
    """
    if name not in PRESETS:
        raise ValueError(
            f"Unknown SpectralViT preset. Valid presets: {sorted(PRESETS)}. "
            f"Received: name={name!r}"
        )
    return dict(PRESETS[name])
