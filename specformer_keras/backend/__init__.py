"""The only framework-specific code: one module per backend and concern.

* `tensorflow_attacks` / `jax_attacks`: `compile_body(model, key, body)` compiles a
  pure `keras.ops` attack loop (FGSM, PGD, APGD, FAB, Square) with the model in
  inference mode and input gradients (TF: `tf.function(jit_compile=True)` and a
  `GradientTape` on the input; JAX: `jax.jit` over `stateless_call` and
  `jax.value_and_grad`). Dispatch: `specformer_keras.attacks._common.compile_body`.
* `tensorflow_trainer` / `jax_trainer`: the train steps of `AdversarialTrainer`.

The torch backend has no module here yet: attacks and adversarial training
raise `NotImplementedError` under it.
"""
