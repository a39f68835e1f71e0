"""Runnable recipes: train a SpectralViT with MSVP, evaluate it, write a report.

One file per task (`cifar10_adv.py`, ...) holds only `get_config(variant)`;
the machinery is shared and each setting is written once:

* `config.py`: the `Config` dataclass (every setting, its default, help text
  and checks) and the values' validation.
* `flags.py`: absl flags generated from `Config`; `--config=quick|smoke`.
* `backends.py`: the Keras backend, distribution and XLA choices.
* `run_dir.py`: the output folder (lock, states, corrupt files).
* `checkpoints.py`: epoch backups, the best model, resumable CSV logs.
* `train.py`: `main`, in stages: input, model, update step, checkpoints,
  evaluation, report.

Nothing here imports Keras at module level: the backend is chosen from the
flags first.
"""
