"""Adversarial training inside `fit`: `AdversarialTrainer` (PGD-AT, TRADES)."""

from specformer_keras.training.adversarial_trainer import AdversarialTrainer

__all__ = ["AdversarialTrainer"]
