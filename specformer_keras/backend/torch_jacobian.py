"""PyTorch Jacobian-vector and vector-Jacobian products of a function of the input.

Same names in every backend (``tensorflow_jacobian``, ``jax_jacobian``):

* ``jvp(fn, x, tangent) -> (fn(x), J tangent)`` (forward mode,
  `torch.func.jvp`)
* ``vjp(fn, x, cotangent) -> (fn(x), J^T cotangent)`` (`torch.autograd.grad`
  with respect to ``x`` only, so no weight ``.grad`` is touched)
* ``gram_fn(fn) -> step(x, v) -> (J v, J^T J v)`` (eager).

Keras runs predict/test steps under `torch.no_grad`; both products enable
gradients themselves. Outputs are detached. Keras's torch attention calls
`scaled_dot_product_attention`, whose fused CPU kernel has no forward-mode
derivative (torch 2.13): the products run with the composite ("math") kernel.
"""

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel


def jvp(fn, x, tangent):
    """``(fn(x), J tangent)`` with ``J`` the Jacobian of ``fn`` at ``x``."""
    x = torch.as_tensor(x).detach()
    tangent = torch.as_tensor(tangent, dtype=x.dtype, device=x.device).detach()
    with torch.enable_grad(), sdpa_kernel([SDPBackend.MATH]):
        y, jv = torch.func.jvp(fn, (x,), (tangent,))
    return y.detach(), jv.detach()


def vjp(fn, x, cotangent):
    """``(fn(x), J^T cotangent)``."""
    x = torch.as_tensor(x).detach().requires_grad_(True)
    with torch.enable_grad(), sdpa_kernel([SDPBackend.MATH]):
        y = fn(x)
        cotangent = torch.as_tensor(cotangent, dtype=y.dtype, device=y.device)
        (grad,) = torch.autograd.grad(y, x, grad_outputs=cotangent, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(x)
    return y.detach(), grad.detach()


def gram_fn(fn):
    """``step(x, v) -> (J v, J^T J v)`` for power iteration on ``J^T J``."""

    def step(x, v):
        _, jv = jvp(fn, x, v)
        _, jtjv = vjp(fn, x, jv)
        return jv, jtjv

    return step
