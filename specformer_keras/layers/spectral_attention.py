"""`SpectralMultiHeadAttention`: multi-head attention with the MSVP penalty."""

import numbers

import keras
import numpy as np
from keras import ops

from specformer_keras.layers.penalty import PROJECTIONS, normalize_penalty
from specformer_keras.spectral import (
    exact_spectral_norms,
    l2_normalize,
    power_iteration,
    spectral_norm_estimate,
    stacked_power_iteration,
)
from specformer_keras.utils.validation import (
    check_int,
    layer_arguments,
    reject_unknown_kwargs,
)

try:  # Reading a kernel without mixed-precision autocast (float32 power iteration).
    from keras.src.backend import AutocastScope as _AutocastScope
except ImportError:  # pragma: no cover - only if Keras moves this private class.
    _AutocastScope = None


def _accepted_arguments(cls):
    """Constructor arguments of every layer class in ``cls``'s MRO (subclasses too)."""
    if cls not in _ACCEPTED:
        layers = [c for c in cls.__mro__ if issubclass(c, keras.layers.Layer)]
        _ACCEPTED[cls] = layer_arguments(*layers)
    return _ACCEPTED[cls]


_ACCEPTED = {}


@keras.saving.register_keras_serializable(package="specformer_keras")
class SpectralMultiHeadAttention(keras.layers.MultiHeadAttention):
    """Multi-head attention with Maximum Singular Value Penalization (MSVP).

    A drop-in replacement for `keras.layers.MultiHeadAttention` (same
    arguments, same call signature, same outputs) from SpecFormer
    (Hu et al., ECCV 2024, https://arxiv.org/abs/2402.03317). For every
    penalized projection P in {query, key, value}, head `h` uses the matrix
    `W_h = kernel[:, h, :]` of shape `(d_model, head_dim)`. Each training call
    runs `power_iterations` steps of power iteration for all heads at once
    (non-trainable float32 state `u` of shape `(num_heads, d_model)` and `v` of
    shape `(num_heads, head_dim)`, no gradient through them), estimates
    `sigma_h = u_h^T W_h v_h` and adds

        sum_P lambda_P * sum_h sigma_h ** 2

    to the layer's losses with `add_loss`. Bounding the largest singular
    values of the projections bounds the local Lipschitz constant of
    self-attention. Calls with `training=False` neither update `u`/`v` nor add
    a loss, so inference and attacks see the plain attention layer.

    Args:
        num_heads: Number of attention heads.
        key_dim: Size of each attention head for query and key.
        penalty: MSVP weight lambda. A float applies the same weight to query,
            key and value; a 3-tuple `(lambda_q, lambda_k, lambda_v)` sets them
            separately; 0 disables a projection's penalty. `None` or 0
            everywhere gives a plain `MultiHeadAttention` with no extra state
            or compute. Defaults to `0.0`.
        power_iterations: Power-iteration steps per training call (>= 1).
            Defaults to `1`.
        **kwargs: Every other argument of `keras.layers.MultiHeadAttention`
            (`value_dim`, `dropout`, `use_bias`, `output_shape`,
            `attention_axes`, initializers, regularizers, constraints, `seed`
            which also seeds the initial `u`/`v`, `name`, `dtype`, ...).

    Call arguments:
        Exactly those of `keras.layers.MultiHeadAttention`: `query`, `value`,
        `key=None`, masks, `return_attention_scores=False`, `training=None`,
        `use_causal_mask=False`.

    Returns:
        The attention output (and scores if requested), as the parent layer.

    Raises:
        TypeError: On an unknown keyword argument, a non-numeric `penalty` or a
            non-integer `power_iterations`.
        ValueError: On a negative or non-finite `penalty` or
            `power_iterations < 1`.

    Example:

    ```python
    import numpy as np
    from specformer_keras import SpectralMultiHeadAttention

    layer = SpectralMultiHeadAttention(num_heads=2, key_dim=8, penalty=1e-3, seed=0)
    x = np.random.rand(4, 5, 16).astype("float32")
    y = layer(x, x, training=True)      # one power-iteration step, adds the penalty
    assert y.shape == (4, 5, 16) and len(layer.losses) == 1
    sigmas = layer.spectral_norms()     # {"query": (2,), "key": (2,), "value": (2,)}
    exact = layer.spectral_norms(exact=True)
    ```

    Reference:
        Hu, Zheng, Wang, Leung, Wu, Xie, "SpecFormer: Guarding Vision
        Transformer Robustness via Maximum Singular Value Penalization",
        ECCV 2024, https://arxiv.org/abs/2402.03317.
    """

    def __init__(self, num_heads, key_dim, penalty=0.0, power_iterations=1, **kwargs):
        reject_unknown_kwargs(
            type(self).__name__, kwargs, allowed=_accepted_arguments(type(self))
        )
        self._penalty_config = penalty
        lambdas = normalize_penalty(penalty)
        check_int("power_iterations", power_iterations)
        super().__init__(num_heads=num_heads, key_dim=key_dim, **kwargs)
        self.lambdas = dict(zip(PROJECTIONS, lambdas))
        self.power_iterations = int(power_iterations)
        self._spectral_state = {}
        self._stacks = ()

    @property
    def penalty(self):
        """The penalty as given to the constructor (float or 3-tuple)."""
        return self._penalty_config

    @property
    def penalized_projections(self):
        """Names of the projections with a non-zero lambda, e.g. `("query", "key")`."""
        return tuple(p for p in PROJECTIONS if self.lambdas[p] > 0)

    def _projection_dense(self, name):
        return {
            "query": self._query_dense,
            "key": self._key_dense,
            "value": self._value_dense,
        }[name]

    def _check_built(self):
        if not self.built:
            raise ValueError(
                f"Layer {self.name!r} is not built yet; call it on inputs first."
            )

    def projection_kernel(self, name):
        """The kernel variable of projection `name`, shape `(d_in, num_heads, head_dim)`.

        Args:
            name: `"query"`, `"key"` or `"value"`.

        Raises:
            ValueError: If `name` is not one of them or the layer is not built.

        Example: `layer.projection_kernel("query").shape == (16, 2, 8)`.
        """
        if name not in PROJECTIONS:
            raise ValueError(
                f"`name` must be one of {PROJECTIONS}. Received: name={name!r}"
            )
        self._check_built()
        return self._projection_dense(name).kernel

    def power_iteration_state(self, name):
        """The `(u, v)` variables of penalized projection `name` (non-trainable).

        `u` has shape `(num_heads, d_in)` and `v` `(num_heads, head_dim)`; a
        training call updates them in place.

        Raises:
            ValueError: If `name` is not a penalized projection (see
                `penalized_projections`) or the layer is not built.
        """
        self._check_built()
        if name not in self._spectral_state:
            raise ValueError(
                "`name` must be a penalized projection of this layer, one of "
                f"{self.penalized_projections}. Received: name={name!r}"
            )
        return self._spectral_state[name]

    @property
    def power_iteration_groups(self):
        """Penalized projections whose power iteration runs as one stacked matmul.

        A tuple of name tuples, in the order a training call runs them:
        `(("query", "key", "value"),)` in self-attention with `value_dim ==
        key_dim`; projections of other shapes form groups of their own. Empty
        before `build` or without a penalty.
        """
        return tuple(names for names, _ in self._stacks)

    def build(self, query_shape, value_shape, key_shape=None):
        super().build(query_shape, value_shape, key_shape)
        initializer = keras.initializers.RandomNormal(seed=self.seed)

        def state(name, shape):
            # Power-iteration state: float32 under any policy, never trained,
            # one copy per replica under tf.distribute (see PITFALLS).
            return self.add_weight(
                name=name,
                shape=shape,
                initializer=initializer,
                trainable=False,
                autocast=False,
                dtype="float32",
                aggregation="none",
            )

        for name in self.penalized_projections:
            d_in, num_heads, head_dim = self._projection_dense(name).kernel.shape
            u = state(f"{name}_u", (num_heads, d_in))
            v = state(f"{name}_v", (num_heads, head_dim))
            self._spectral_state[name] = (u, v)
        # Projections whose kernels share d_model and head_dim (all three in
        # self-attention with value_dim == key_dim) run their power iteration
        # as one batched matmul: one op per step instead of one per projection.
        stacks = {}
        for name in self.penalized_projections:
            shape = self._projection_dense(name).kernel.shape
            stacks.setdefault((shape[0], shape[2]), []).append(name)
        self._stacks = tuple(
            (tuple(names), self._stack_weights(names)) for names in stacks.values()
        )

    def _stack_weights(self, names):
        """The lambda of every stacked head: one float, or a float32 vector."""
        lambdas = [self.lambdas[name] for name in names]
        if len(set(lambdas)) == 1:
            return lambdas[0]
        heads = [self._projection_dense(name).kernel.shape[1] for name in names]
        return np.repeat(np.asarray(lambdas, "float32"), heads)

    def _float32_kernel(self, name):
        kernel = self._projection_dense(name).kernel
        if _AutocastScope is not None:
            with _AutocastScope(None):
                return ops.cast(kernel.value, "float32")
        return ops.cast(kernel, "float32")

    def msvp_penalty(self, update=False):
        """Returns `sum_P lambda_P * sum_h sigma_h^2` as a float32 scalar.

        Args:
            update: If True, first runs `power_iterations` steps and assigns the
                new `u`/`v` (what a training call does). Defaults to False.

        Returns:
            A scalar tensor, differentiable with respect to the kernels.
        """
        if update:
            return self._update_and_penalty()
        total = ops.zeros((), dtype="float32")
        for name in self.penalized_projections:
            sigma = self._estimate_from_state(name)
            total = total + self.lambdas[name] * ops.sum(ops.square(sigma))
        return total

    def _estimate_from_state(self, name):
        """Per-head sigma of projection ``name`` from the stored u/v (no update)."""
        u_var, v_var = self._spectral_state[name]
        return spectral_norm_estimate(
            self._float32_kernel(name),
            l2_normalize(u_var.value),
            l2_normalize(v_var.value),
        )

    def _update_and_penalty(self):
        """Power iteration on every stack of kernels, assigns `u`/`v`, the penalty."""
        total = None
        for names, weights in self._stacks:
            states = [self._spectral_state[name] for name in names]
            sigma, us, vs = stacked_power_iteration(
                [self._float32_kernel(name) for name in names],
                [u_var.value for u_var, _ in states],
                self.power_iterations,
            )
            for (u_var, v_var), u, v in zip(states, us, vs):
                u_var.assign(u)
                v_var.assign(v)
            if isinstance(weights, float):
                term = weights * ops.sum(sigma * sigma)
            else:
                term = ops.sum(ops.convert_to_tensor(weights) * (sigma * sigma))
            total = term if total is None else total + term
        return ops.zeros((), dtype="float32") if total is None else total

    def warmup_power_iteration(self, iterations=20):
        """Runs `iterations` power-iteration steps now and stores `u`/`v`.

        Useful after loading pretrained kernels, so the first training
        penalty already uses converged singular vectors. Adds no loss.

        Args:
            iterations: Number of steps (>= 1). Defaults to `20`.

        Raises:
            TypeError: If `iterations` is not an integer.
            ValueError: If `iterations < 1`.
        """
        check_int("iterations", iterations)
        for name in self.penalized_projections:
            u_var, v_var = self._spectral_state[name]
            u, v = power_iteration(self._float32_kernel(name), u_var.value, iterations)
            u_var.assign(u)
            v_var.assign(v)

    def call(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
    ):
        if training and self._spectral_state:
            self.add_loss(self.msvp_penalty(update=True))
        return super().call(
            query,
            value,
            key=key,
            query_mask=query_mask,
            value_mask=value_mask,
            key_mask=key_mask,
            attention_mask=attention_mask,
            return_attention_scores=return_attention_scores,
            training=training,
            use_causal_mask=use_causal_mask,
        )

    def spectral_norms(self, exact=False):
        """Per-head largest singular values of the projections.

        Args:
            exact: If False (default), the current power-iteration estimates
                `u_h^T W_h v_h` for the penalized projections. If True, exact
                values from an SVD for query, key and value.

        Returns:
            A dict `{"query": np.ndarray (num_heads,), "key": ..., "value": ...}`.

        Raises:
            ValueError: If the layer is not built yet.
        """
        self._check_built()
        if exact:
            return {
                name: exact_spectral_norms(self._float32_kernel(name))
                for name in PROJECTIONS
            }
        return {
            name: ops.convert_to_numpy(self._estimate_from_state(name))
            for name in self.penalized_projections
        }

    def get_config(self):
        config = super().get_config()
        penalty = self._penalty_config
        if penalty is not None and not isinstance(penalty, numbers.Real):
            penalty = [float(p) for p in penalty]
        config.update({"penalty": penalty, "power_iterations": self.power_iterations})
        return config
