"""The models and settings the cross-backend agreement check runs on every backend."""

from testing import TINY_VIT, toy_mlp

from specformer_keras import SpectralViT

EPS = 0.08
PGD_STEP = 0.02
PGD_STEPS = 10
AGREEMENT_VIT = {**TINY_VIT, "num_classes": 5, "depth": 2, "mlp_dim": 32}


def build_vit():
    return SpectralViT(**AGREEMENT_VIT, penalty=1e-2, seed=0)


def build_mlp():
    return toy_mlp()
