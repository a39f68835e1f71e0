"""`benchmarks/attack_speed.py`'s FLOP count against XLA's own cost analysis.

The benchmark's "arithmetic floor" (and the claim that a 3.7 s PGD-10 would
need ~90% of SGEMM peak) rests on `pgd_gflops`, counted by hand from the
architecture. Here XLA counts the FLOPs of one compiled forward + input
gradient of the same ViT, and the two must agree: the hand count leaves out
elementwise work (softmax, GELU, LayerNorm), so XLA may be a few percent
higher, never lower.
"""

from testing import load_benchmark, only_backends


def load_attack_speed():
    return load_benchmark("attack_speed")


@only_backends("jax")
def test_pgd_gflops_matches_xla_cost_analysis():
    import jax
    import jax.numpy as jnp

    attack_speed = load_attack_speed()
    batch = 2
    model, x, y = attack_speed.build(batch)
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def loss(images):
        logits, _ = model.stateless_call(
            trainable, non_trainable, images, training=False
        )
        log_probs = jax.nn.log_softmax(logits)
        return -jnp.sum(jnp.take_along_axis(log_probs, y[:, None], axis=1))

    compiled = jax.jit(jax.grad(loss)).lower(jnp.asarray(x)).compile()
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list):  # older JAX returns one dict per device
        analysis = analysis[0]
    xla_gflop = analysis["flops"] / 1e9
    ours_gflop = attack_speed.pgd_gflops(batch, steps=1)
    assert ours_gflop <= xla_gflop <= 1.08 * ours_gflop, (ours_gflop, xla_gflop)
