"""The part of `compile_body` every backend shares: a weak per-model cache.

Each ``<backend>_attacks`` module writes only ``build_runner(model, body)``,
its framework's way to run ``body(evaluate_fn, logits_fn, *tensors)`` (a pure
``keras.ops`` attack loop) with the model in inference mode and input
gradients; `cached_compile_body` turns it into the ``compile_body(model, key,
body)`` that ``specformer_keras.attacks.runner`` calls, building each runner
once per model (held weakly) and ``key``.
"""

import weakref

from keras import ops


def inference_logits(model, x):
    """``model(x, training=False)`` as float32 logits (the live model)."""
    return ops.cast(model(x, training=False), "float32")


def cached_compile_body(build_runner):
    """``compile_body(model, key, body)`` from a backend's ``build_runner``.

    Args:
        build_runner: ``(model, body) -> run``, where ``run(*arrays)`` takes
            numpy arrays and returns a tuple of numpy arrays.

    Returns:
        ``compile_body(model, key, body)``: the runner of ``body`` for
        ``model`` and ``key``, built on the first call and cached; its
        ``cache`` attribute is the ``WeakKeyDictionary`` ``{model: {key:
        run}}``.

    Example:

    ```python
    import keras, numpy as np
    from specformer_keras.backend.compile_cache import cached_compile_body

    builds = []

    def build_runner(model, body):
        builds.append(body)
        return lambda *arrays: tuple(arrays)

    compile_body = cached_compile_body(build_runner)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    run = compile_body(model, ("copy",), None)
    assert compile_body(model, ("copy",), None) is run and len(builds) == 1
    assert list(compile_body.cache[model]) == [("copy",)]
    ```
    """

    cache = weakref.WeakKeyDictionary()

    def compile_body(model, key, body):
        """Compiled numpy-in / numpy-out runner of ``body``, cached per model.

        Args:
            model: Keras model returning logits.
            key: hashable description of the static settings closed over by
                ``body`` (the cache key, per model).
            body: ``body(evaluate_fn, logits_fn, *tensors) -> tuple of
                tensors`` with ``evaluate_fn(loss_fn, x, *loss_args) -> (loss,
                d sum(loss)/dx, logits)``.

        Returns:
            ``run(*arrays) -> tuple of numpy arrays``.
        """
        per_model = cache.setdefault(model, {})
        if key not in per_model:
            per_model[key] = build_runner(model, body)
        return per_model[key]

    compile_body.cache = cache
    return compile_body
