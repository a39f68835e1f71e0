"""absl flags generated from `Config`: one flag per field, plus `--config`.

`define_flags(get_config)` defines them with the recipe's default variant as
defaults; `config_from_flags(get_config)` starts from the variant `--config`
names and applies the flags given on the command line (or in a `--flagfile`),
parsed to the field's type. Example (flags are global: run it once a process):

```python
from absl import flags as absl_flags
from recipes import cifar10_adv, flags

flags.define_flags(cifar10_adv.get_config)
absl_flags.FLAGS(["cifar10_adv", "--config=smoke", "--eps=4/255"])
config = flags.config_from_flags(cifar10_adv.get_config)
assert config.eps == 4 / 255 and config.epochs == 1
```
"""

import dataclasses
from fractions import Fraction

from absl import flags

from recipes.config import FIELDS, TYPES, RecipeError, render
from recipes.variants import VARIANTS

FLAGS = flags.FLAGS


def define_flags(get_config, flag_values=FLAGS):
    """Defines `--config`, `--print_settings` and one flag per `Config` field.

    Args:
        get_config: The recipe's `get_config(variant)`; the `"default"`
            variant gives the flags' defaults.
        flag_values: The absl `FlagValues` to define them in.
    """
    flags.DEFINE_string(
        "config",
        None,
        f"Named variant applied before the other flags: {list(VARIANTS[1:])}. "
        "Flags given on the command line (or in a --flagfile) win over it.",
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        "print_settings",
        False,
        "Print the validated settings as JSON and exit.",
        flag_values=flag_values,
    )
    default = get_config("default")
    for name, field in FIELDS.items():
        _define(name, field, render(name, getattr(default, name)), flag_values)


def _define(name, field, default, flag_values):
    kind = TYPES[name]
    text = field.metadata["help"]
    if "choices" in field.metadata:
        text += f" One of {', '.join(field.metadata['choices'])}."
    if field.metadata.get("repeatable"):
        define = flags.DEFINE_multi_string
    elif kind in (tuple[str, ...], tuple[float, ...]):
        define = flags.DEFINE_list
    elif kind is bool:
        define = flags.DEFINE_bool
    elif kind in (int, int | None):
        define = flags.DEFINE_integer
    else:  # str, str | None, and float (as text: fractions such as 8/255 allowed)
        define = flags.DEFINE_string
    if isinstance(default, list):
        default = list(default)
    define(name, default, text, flag_values=flag_values)


def config_from_flags(get_config, flag_values=FLAGS):
    """The `Config` of `--config` (default: "default") with the given flags applied.

    Args:
        get_config: The recipe's `get_config(variant)`.
        flag_values: The parsed absl `FlagValues`.

    Raises:
        RecipeError: an unknown variant or a value that does not parse.
    """
    variant = flag_values.config or "default"
    if variant not in VARIANTS:
        raise RecipeError(
            f"--config must be one of {list(VARIANTS[1:])}. Received: config={variant!r}"
        )
    changes = {
        name: parse_flag(name, flag_values[name].value)
        for name in FIELDS
        if flag_values[name].present
    }
    return dataclasses.replace(get_config(variant), **changes)


def parse_flag(name, value):
    """A flag's value as its field's type (fractions for floats, tuples for lists)."""
    kind = TYPES[name]
    if kind is float:
        return parse_fraction(name, value)
    if kind == tuple[float, ...]:
        return tuple(parse_fraction(name, v) for v in value)
    if kind == tuple[str, ...]:
        return tuple(value)
    return value


def parse_fraction(name, text):
    """`"8/255"` or `"0.03"` -> float (range checks are `Config`'s)."""
    try:
        return float(Fraction(str(text).strip()))
    except (ValueError, ZeroDivisionError):
        raise RecipeError(
            f"--{name} must be a number or a fraction such as 8/255. "
            f"Received: {name}={text!r}"
        ) from None
