"""Recipe settings in-process: Config, flags, validation, overrides, backends."""

import dataclasses
import importlib
import inspect
import os

import pytest
from absl import flags as absl_flags
from testing import BACKEND

from recipes import backends, cifar10_adv, config, flags, modeling, report, variants
from recipes.config import Config, RecipeError, validate

RECIPES = ("cifar10_adv", "cifar100_adv", "cifar10_standard", "imagenette_adv")


def _config(**changes):
    return dataclasses.replace(cifar10_adv.get_config("smoke"), **changes)


def _parse(args, get_config=cifar10_adv.get_config):
    values = absl_flags.FlagValues()
    flags.define_flags(get_config, values)
    values(["recipe", *args])
    return flags.config_from_flags(get_config, values), values


# -- variants and flags


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("variant", variants.VARIANTS)
def test_every_variant_of_every_recipe_validates(recipe, variant, tmp_path):
    get_config = importlib.import_module(f"recipes.{recipe}").get_config
    base = get_config(variant)
    if base.dataset not in config.TFDS_NAMES and not os.path.exists(
        variants.SHARED_CIFAR10
    ):
        pytest.skip("shared CIFAR-10 archive not present")
    checked = validate(dataclasses.replace(base, output_dir=str(tmp_path)), recipe)
    assert checked.output_dir == str(tmp_path)
    modeling.check_model_settings(checked)
    report.check_attack_names(checked)


def test_variants_sit_beside_the_default():
    default, quick, smoke = (cifar10_adv.get_config(v) for v in variants.VARIANTS)
    assert (default.epochs, quick.epochs, smoke.epochs) == (40, 4, 1)
    assert default.preset == "vit_base_patch4_32"
    assert quick.preset == smoke.preset == "vit_micro_patch4_32"
    assert smoke.model_override and not quick.model_override
    with pytest.raises(RecipeError, match="--config must be one of"):
        cifar10_adv.get_config("fast")


def test_recipe_defaults_survive_in_their_variants():
    imagenette = importlib.import_module("recipes.imagenette_adv").get_config
    assert imagenette("smoke").weight_decay == imagenette("default").weight_decay
    assert imagenette("quick").dataset == "imagenette"
    standard = importlib.import_module("recipes.cifar10_standard").get_config
    assert {standard(v).method for v in variants.VARIANTS} == {"standard"}
    assert {standard(v).eval_eps for v in variants.VARIANTS} == {1 / 255}


def test_flags_are_generated_from_every_field():
    _, values = _parse([])
    for name in config.FIELDS:
        assert name in values, name
    assert values["eps"].default == "8/255"
    assert values["penalty"].default == ["1e-5"]
    assert values["curve_eps"].default[-1] == "64/255"


def test_config_variant_then_explicit_flags():
    parsed, _ = _parse(["--config=smoke", "--eps=4/255", "--curve_eps=0,1/255"])
    smoke = cifar10_adv.get_config("smoke")
    assert parsed == dataclasses.replace(smoke, eps=4 / 255, curve_eps=(0.0, 1 / 255))
    parsed, _ = _parse(["--model_override=depth=2", "--model_override=mlp_dim=8"])
    assert parsed.model_overrides == {"depth": 2, "mlp_dim": 8}
    with pytest.raises(RecipeError, match="--config must be one of"):
        _parse(["--config=fast"])


def test_flagfile_applies_like_the_command_line(tmp_path):
    flagfile = tmp_path / "quick.cfg"
    flagfile.write_text("--epochs=3\n--eps=2/255\n")
    parsed, _ = _parse(["--config=smoke", f"--flagfile={flagfile}"])
    assert (parsed.epochs, parsed.eps) == (3, 2 / 255)


@pytest.mark.parametrize(
    "text, expected",
    [("8/255", 8 / 255), ("0.5", 0.5), (" 2/255 ", 2 / 255), ("0", 0.0)],
)
def test_parse_fraction(text, expected):
    assert flags.parse_fraction("eps", text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["abc", "1/0", "nan", "inf"])
def test_parse_fraction_rejects(text):
    with pytest.raises(RecipeError, match="Received: eps="):
        flags.parse_fraction("eps", text)


# -- validation of values and combinations (no data, no model)


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"eps": -1 / 255}, "--eps must be a finite number in \\[0"),
        ({"seed": -1}, "--seed must be an integer >= 0"),
        ({"epochs": 0}, "--epochs must be an integer >= 1"),
        ({"learning_rate": 0.0}, "--learning_rate must be a finite number in \\(0"),
        ({"penalty": (1e-3, 1e-3)}, "--penalty takes 1 or 3 value"),
        ({"penalty": (-1.0,)}, "--penalty must be"),
        ({"method": "fgsm_at"}, "--method must be one of"),
        ({"jit_compile": "yes"}, "--jit_compile must be one of"),
        ({"verbose": "3"}, "--verbose must be one of"),
        ({"eval_attacks": (" ",)}, "--eval_attacks must name at least one"),
        ({"warmup_epochs": 2.0, "epochs": 1}, "--warmup_epochs must be <= --epochs"),
        ({"model_override": ("depth",)}, "--model_override must be KEY=VALUE"),
        ({"dataset": "no/such/data.tar.gz"}, "was not found"),
    ],
)
def test_validate_refuses_with_the_flag_named(changes, expected, tmp_path):
    with pytest.raises(RecipeError, match=expected):
        validate(
            _config(
                **{"output_dir": str(tmp_path), "dataset": str(tmp_path), **changes}
            ),
            "r",
        )


def test_validate_normalizes(tmp_path):
    checked = validate(
        _config(
            dataset=str(tmp_path),
            output_dir=str(tmp_path / "out"),
            curve_eps=(8 / 255, 0.0),
            eval_attacks=(" clean", "pgd20 "),
        ),
        "r",
    )
    assert checked.curve_eps == (0.0, 8 / 255)
    assert checked.eval_attacks == ("clean", "pgd20")
    assert not (tmp_path / "out").exists()  # validation creates nothing


def test_output_dir_that_is_a_file_or_below_one(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for path, expected in (
        (a_file, "is a file"),
        (a_file / "run", "cannot be written"),
    ):
        with pytest.raises(RecipeError, match=expected):
            validate(_config(dataset=str(tmp_path), output_dir=str(path)), "r")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to any folder")
def test_output_dir_not_writable(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(RecipeError, match="cannot be written"):
        validate(_config(dataset=str(tmp_path), output_dir=str(locked / "run")), "r")


def test_model_overrides_are_checked_against_spectral_vit():
    signature = inspect.signature(modeling.SpectralViT.__init__).parameters
    assert set(modeling.model_arguments()) == set(signature) - {"self", "kwargs"}
    modeling.check_model_overrides({"depth": 2, "dropout_rate": 0.1})
    with pytest.raises(RecipeError, match="unknown SpectralViT arguments") as info:
        modeling.check_model_overrides({"hidden_dims": 32, "depth": 1})
    message = str(info.value)
    assert "['hidden_dims']" in message and "'hidden_dim'" in message
    for key, hint in (("penalty", "use --penalty"), ("seed", "use --seed")):
        with pytest.raises(RecipeError, match=hint):
            modeling.check_model_overrides({key: 0.5})


@pytest.mark.parametrize(
    "changes", [{"eval_attacks": ("clean", "foo")}, {"eval_attacks": ("pgd0",)}]
)
def test_unknown_eval_attacks_refused(changes):
    with pytest.raises(RecipeError, match="--eval_attacks names unknown attacks"):
        report.check_attack_names(_config(**changes))


@pytest.mark.parametrize("name", ["foo", "clean", "pgd"])
def test_unknown_curve_attack_refused(name):
    with pytest.raises(RecipeError, match="--curve_attack must be"):
        report.check_attack_names(_config(curve_attack=name))


def test_unknown_preset_refused():
    with pytest.raises(RecipeError, match="--preset must be one of"):
        modeling.check_model_settings(_config(preset="vit_huge"))


def test_known_attack_names_pass():
    report.check_attack_names(
        _config(
            eval_attacks=("clean", "fgsm", "pgd7", "cw20", "autoattack", "square"),
            curve_attack="square100",
        )
    )


# -- backends


def test_default_backend_prefers_tensorflow_then_jax_then_torch(monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    for present, expected in (
        ({"tensorflow", "jax", "torch"}, "tensorflow"),
        ({"jax", "torch"}, "jax"),
        ({"torch"}, "torch"),
    ):
        monkeypatch.setattr(backends, "installed", lambda m, p=present: m in p)
        assert backends.default_backend() == expected
    monkeypatch.setattr(backends, "installed", lambda m: False)
    with pytest.raises(RecipeError, match="No Keras backend is installed"):
        backends.default_backend()
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert backends.default_backend() == "jax"


def test_choose_backend_refusals(monkeypatch):
    with pytest.raises(RecipeError, match="--backend must be one of"):
        backends.choose_backend("numpy")
    other = next(b for b in backends.BACKENDS if b != BACKEND)
    monkeypatch.setattr(backends, "installed", lambda m: True)
    with pytest.raises(RecipeError, match="Keras was already imported"):
        backends.choose_backend(other)
    monkeypatch.setattr(backends, "installed", lambda m: m != other)
    with pytest.raises(RecipeError, match="not installed: pip install"):
        backends.choose_backend(other)
    assert backends.choose_backend(BACKEND) == BACKEND


def test_check_backend_supports(monkeypatch):
    import specformer_keras.backend as backend_package

    backends.check_backend_supports(BACKEND, needs_trainer=True)

    def missing(concern):
        raise ModuleNotFoundError(f"specformer_keras.backend.x_{concern}")

    monkeypatch.setattr(backend_package, "backend_module", missing)
    with pytest.raises(RecipeError, match="does not support adversarial training"):
        backends.check_backend_supports("torch", needs_trainer=True)
    with pytest.raises(RecipeError, match="does not support attacks"):
        backends.check_backend_supports("torch", needs_trainer=False)


def test_make_deterministic_on_jax_asks_xla_for_deterministic_gpu_ops(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    backends.make_deterministic("jax")
    backends.make_deterministic("jax")  # once only
    assert os.environ["XLA_FLAGS"] == (
        "--xla_force_host_platform_device_count=2 --xla_gpu_deterministic_ops=true"
    )


@pytest.mark.parametrize(
    "setting, backend, replicas, expected",
    [
        # Keras's "auto" leaves TF on CPU without XLA; the recipes ask for it.
        ("auto", "tensorflow", 1, True),
        ("auto", "tensorflow", 2, "auto"),
        ("auto", "jax", 1, "auto"),
        ("auto", "torch", 1, "auto"),
        ("true", "jax", 1, True),
        ("true", "tensorflow", 1, True),
        ("false", "tensorflow", 1, False),
        ("false", "tensorflow", 4, False),
        ("false", "jax", 1, False),
    ],
)
def test_resolve_jit_compile(setting, backend, replicas, expected):
    assert backends.resolve_jit_compile(setting, backend, replicas) == expected


def test_resolve_jit_compile_refuses_forced_xla_under_tf_distribute():
    with pytest.raises(RecipeError, match="--jit_compile=true cannot be used"):
        backends.resolve_jit_compile("true", "tensorflow", 2)


def test_tfds_names_match_the_data_module():
    from specformer_keras.data import TFDS_DATASETS

    assert sorted(config.TFDS_NAMES) == sorted(TFDS_DATASETS)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().epochs = 3
