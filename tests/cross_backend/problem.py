"""The models and settings the cross-backend agreement check runs on every backend."""

import keras

from specformer_keras import SpectralViT

EPS = 0.08
PGD_STEP = 0.02
PGD_STEPS = 10
TINY_VIT = dict(
    image_size=8,
    patch_size=4,
    num_classes=5,
    hidden_dim=16,
    depth=2,
    num_heads=2,
    mlp_dim=32,
    penalty=1e-2,
    seed=0,
)


def build_vit():
    return SpectralViT(**TINY_VIT)


def build_mlp(image=8, channels=1, hidden=32, classes=5):
    return keras.Sequential(
        [
            keras.Input((image, image, channels)),
            keras.layers.Flatten(),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(classes),
        ]
    )
