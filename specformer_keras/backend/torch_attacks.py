"""PyTorch execution of attack loops (FGSM, PGD and the AutoAttack components).

`compile_body(model, key, body)` runs ``body(evaluate_fn, logits_fn, *tensors)``
(a pure ``keras.ops`` function, loops included) with the live model in
inference mode (``training=False``). Keras runs ``predict`` and test steps
under ``torch.no_grad``, so ``evaluate_fn`` opens ``torch.enable_grad()``,
detaches the input, marks it ``requires_grad_(True)`` and takes
``torch.autograd.grad`` of the summed loss with respect to the input only: the
weights' ``.grad`` stay untouched, and u/v (parameters with
``requires_grad=False``) are never differentiated. Everything else runs under
``torch.no_grad``. Runners are cached per model (weakly) and ``key``
(`compile_cache`).

The loop runs eagerly (``keras.ops.fori_loop`` is a Python loop on torch),
decided by measurement (``benchmarks/torch_attack_loop.py``: PGD-10 Linf,
SpectralViT hidden 96, depth 2, 32x32, patch 4, batch 32, torch 2.13 CPU,
Keras 3.15, 1 thread, on a shared 2-core Intel Xeon under load 7 to 10;
runners interleaved, median of 5 calls after the first; 2026-12-01)::

    runner                          first call s   median s
    eager autograd.grad (this)              2.10      2.52
    eager torch.func.grad_and_value         3.13      2.52
    torch.compile, autograd.grad          299.95      2.88
    torch.compile, torch.func              14.06      2.83

All four gave the same adversarial examples. ``torch.compile`` was slower per
call (Keras layers' attribute tracking, ``_setattr_hook``, breaks the graph
and hits dynamo's recompile limit) and costs seconds to minutes per new batch
shape (the set of robust points shrinks during AutoAttack); ``torch.func``
gained nothing over ``autograd.grad``.
"""

import contextlib

import torch
from keras import ops

from specformer_keras.backend.compile_cache import (
    cached_compile_body,
    inference_logits,
)


def input_value_and_grad(forward, x):
    """``(value, d sum(value) / dx, aux)`` of ``forward(x) -> (value, aux)``.

    Gradients flow to ``x`` only, also inside ``torch.no_grad`` (Keras'
    predict and test steps): ``x`` is detached and marked as requiring
    gradients, and ``torch.autograd.grad`` leaves every weight's ``.grad``
    untouched. The returned tensors carry no autograd history.

    Args:
        forward: ``x -> (per-example value, aux tensor or None)``.
        x: input tensor.

    Returns:
        ``(value, grad, aux)``, detached; ``grad`` has x's shape (zeros where
        the value does not depend on x).

    Example:

    ```python
    import torch
    from specformer_keras.backend.torch_attacks import input_value_and_grad

    value, grad, _ = input_value_and_grad(lambda x: ((x**2).sum(1), None),
                                          torch.ones(2, 3))
    assert torch.equal(grad, 2 * torch.ones(2, 3))
    ```
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        value, aux = forward(x)
        if value.requires_grad:
            (grad,) = torch.autograd.grad(value.sum(), x, allow_unused=True)
        else:
            grad = None
    if grad is None:
        grad = torch.zeros_like(x)
    if aux is not None:
        aux = aux.detach()
    return value.detach(), grad.detach(), aux


@contextlib.contextmanager
def input_gradients_only(model):
    """Context in which ``model``'s trainable weights do not require gradients.

    The attacks differentiate with respect to the input only; with the weights'
    ``requires_grad`` off, autograd records and saves nothing for them (PGD-10
    on the benchmark ViT, batch 8: 5% faster). Restored on exit, also on error.

    Args:
        model: Keras model (on torch its variables hold ``torch.nn.Parameter``s).

    Example:

    ```python
    import keras
    from specformer_keras.backend.torch_attacks import input_gradients_only

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with input_gradients_only(model):
        pass
    ```
    """
    tensors = [
        v.value
        for v in model.trainable_variables
        if getattr(v.value, "requires_grad", False)
    ]
    for tensor in tensors:
        tensor.requires_grad_(False)
    try:
        yield
    finally:
        for tensor in tensors:
            tensor.requires_grad_(True)


def build_runner(model, body):
    """``run(*arrays)``: ``body`` eagerly, input gradients only."""

    def logits_fn(x):
        return inference_logits(model, x)

    def evaluate_fn(loss_fn, x, *loss_args):
        def forward(x):
            logits = inference_logits(model, x)
            return loss_fn(logits, *loss_args), logits

        return input_value_and_grad(forward, x)

    def run(*arrays):
        with torch.no_grad(), input_gradients_only(model):
            tensors = [ops.convert_to_tensor(a) for a in arrays]
            outputs = body(evaluate_fn, logits_fn, *tensors)
        return tuple(ops.convert_to_numpy(o) for o in outputs)

    return run


compile_body = cached_compile_body(build_runner)
_CACHE = compile_body.cache  # {model: {key: run}}
