"""Runs the agreement problem on the backend of ``KERAS_BACKEND`` (see test_agreement.py).

    KERAS_BACKEND=torch python tests/cross_backend/worker.py FOLDER

reads ``FOLDER/{problem.npz, vit.weights.h5, mlp.weights.h5}`` and writes
``FOLDER/<backend>.npz``.
"""

import os
import sys

import keras
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # problem.py and tests/testing.py
from problem import EPS, PGD_STEP, PGD_STEPS, build_mlp, build_vit  # noqa: E402

from specformer_keras.attacks.autoattack import autoattack  # noqa: E402
from specformer_keras.attacks.fgsm import fgsm  # noqa: E402
from specformer_keras.attacks.pgd import pgd  # noqa: E402


def main(folder):
    data = np.load(os.path.join(folder, "problem.npz"))
    vit = build_vit()
    vit.load_weights(os.path.join(folder, "vit.weights.h5"))
    mlp = build_mlp()
    mlp.load_weights(os.path.join(folder, "mlp.weights.h5"))
    x, y = data["x"], data["y"]
    x_aa = autoattack(mlp, x, y, EPS, version="standard", seed=0)
    aa_logits = keras.ops.convert_to_numpy(mlp(x_aa, training=False))
    np.savez(
        os.path.join(folder, f"{keras.config.backend()}.npz"),
        vit_logits=keras.ops.convert_to_numpy(vit(data["x_vit"], training=False)),
        mlp_logits=keras.ops.convert_to_numpy(mlp(x, training=False)),
        fgsm=fgsm(mlp, x, y, EPS),
        pgd=pgd(mlp, x, y, EPS, PGD_STEP, PGD_STEPS, random_start=False),
        autoattack_robust=aa_logits.argmax(-1) == y,
    )


if __name__ == "__main__":
    main(sys.argv[1])
