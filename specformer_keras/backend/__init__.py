"""The only framework-specific code, chosen once for the whole package.

Per backend and concern there is one module ``<backend>_<concern>.py``, with the
same names in each (as Keras keeps ``keras/src/backend/<name>/``):

* ``*_attacks``: ``compile_body(model, key, body)`` runs a pure ``keras.ops``
  attack loop (FGSM, PGD, APGD, FAB, Square) with the model in inference mode and
  input gradients: ``tensorflow_attacks`` (``tf.function(jit_compile=True)`` +
  ``GradientTape``), ``jax_attacks`` (``jax.jit`` over ``stateless_call``),
  ``torch_attacks`` (eager loop, ``torch.autograd.grad`` on the input; eager
  measured faster than ``torch.compile`` here). Each writes only
  ``build_runner(model, body)``; the per-model cache that makes it
  ``compile_body`` is ``compile_cache.cached_compile_body``, shared.
* ``*_trainer``: ``AdversarialSteps``, the adversarial ``train_step``/
  ``test_step`` mixin of ``AdversarialTrainer`` (``tensorflow_trainer``,
  ``jax_trainer``, ``torch_trainer``).
* ``*_jacobian``: ``jvp``, ``vjp`` and ``gram_fn``, the Jacobian-vector products
  of the local-Lipschitz power iteration in ``specformer_keras.diagnostics``.
* ``*_collectives``: ``initialize``, ``layout_fields`` and ``allgather_bytes``,
  the multi-process engine of ``specformer_keras.distributed``
  (``MultiWorkerMirroredStrategy``, ``jax.distributed``, ``torch.distributed``).

`backend_module(concern)` is the single dispatch point: every other part of the
package asks it instead of reading ``keras.config.backend()`` itself.
"""

import importlib

import keras

BACKEND = keras.config.backend()
SUPPORTED_BACKENDS = ("tensorflow", "jax", "torch")


def backend_module(concern):
    """The module ``specformer_keras.backend.<active backend>_<concern>``.

    Args:
        concern: ``"attacks"``, ``"trainer"``, ``"jacobian"``, ``"collectives"``
            (or another concern that has one module per backend in this package).

    Raises:
        NotImplementedError: for a Keras backend this package does not support
            (e.g. ``"numpy"`` or ``"openvino"``).
    """
    if BACKEND not in SUPPORTED_BACKENDS:
        raise NotImplementedError(
            f"specformer_keras supports the Keras backends {SUPPORTED_BACKENDS}. "
            f"Received: KERAS_BACKEND={BACKEND!r}"
        )
    return importlib.import_module(f"specformer_keras.backend.{BACKEND}_{concern}")
