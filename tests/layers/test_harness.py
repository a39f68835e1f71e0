"""`testing.run_layer_test` fails on layers that break each of its checks."""

import keras
import pytest
from testing import run_layer_test


@keras.saving.register_keras_serializable(package="specformer_keras_tests")
class Counter(keras.layers.Layer):
    """Counts calls in a non-trainable weight; `when` says which calls."""

    def __init__(self, units=3, when="training", forget_units=False, **kwargs):
        super().__init__(**kwargs)
        self.units, self.when, self.forget_units = units, when, forget_units
        self.dense = keras.layers.Dense(units, name="dense")  # stable weight paths

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.count = self.add_weight(
            name="count", shape=(), initializer="zeros", trainable=False
        )

    def call(self, x, training=None):
        if self.when == "always" or (self.when == "training" and training):
            self.count.assign(self.count + 1.0)
        return self.dense(x)

    def get_config(self):
        config = super().get_config()
        config.update({"when": self.when, "forget_units": self.forget_units})
        if not self.forget_units:
            config["units"] = self.units
        return config


CHECKS = dict(
    input_shape=(2, 4),
    expected_output_shape=(2, 3),
    expected_num_trainable_weights=2,
    expected_num_non_trainable_weights=1,
    run_training_check=False,
)


def test_a_correct_layer_passes():
    run_layer_test(Counter, {}, **{**CHECKS, "run_training_check": True})


@pytest.mark.parametrize(
    "init_kwargs, changes, match",
    [
        ({"when": "always"}, {}, "moved with training=False"),
        ({"when": "never"}, {}, "no non-trainable weight moved"),
        (
            {"units": 3, "forget_units": True},
            {},
            r"lacks constructor arguments \['units'\]",
        ),
        ({}, {"expected_output_shape": (2, 4)}, "expected output shape"),
        ({}, {"expected_num_trainable_weights": 1}, "2 trainable weights"),
        ({}, {"expected_num_non_trainable_weights": 0}, "1 non-trainable weights"),
    ],
    ids=["state-in-inference", "frozen-state", "config", "shape", "trainable", "state"],
)
def test_each_check_can_fail(init_kwargs, changes, match):
    with pytest.raises(AssertionError, match=match):
        run_layer_test(Counter, init_kwargs, **{**CHECKS, **changes})
