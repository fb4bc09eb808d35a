"""Typed YAML configs: round-trips, overrides, and refusals that name the key path."""
import pytest

from vqbet_ros.config_io import ConfigError, from_dict, load_yaml, save_yaml, to_dict
from vqbet_ros.model.config import VQBeTConfig

SPEC = {"cameras": {"top": [3, 96, 96]}, "joint_names": ["x", "y"], "action_names": ["x", "y"]}


def test_model_config_yaml_round_trip_is_equal(tmp_path):
    config = from_dict(VQBeTConfig, {"spec": SPEC, "prior": {"n_layer": 2}})
    save_yaml(config, tmp_path / "config.yaml")
    assert load_yaml(VQBeTConfig, tmp_path / "config.yaml") == config


def test_overrides_parse_yaml_values(tmp_path):
    save_yaml(from_dict(VQBeTConfig, {"spec": SPEC}), tmp_path / "c.yaml")
    config = load_yaml(VQBeTConfig, tmp_path / "c.yaml", ["prior.n_layer=3", "heads.argmax=true", "spec.fps=30"])
    assert (config.prior.n_layer, config.heads.argmax, config.spec.fps) == (3, True, 30.0)


def test_float_written_without_a_dot_is_a_number(tmp_path):
    save_yaml(from_dict(VQBeTConfig, {"spec": SPEC}), tmp_path / "c.yaml")
    config = load_yaml(VQBeTConfig, tmp_path / "c.yaml", ["tokenizer.ema_eps=1e-6"])
    assert config.tokenizer.ema_eps == 1e-6
    with pytest.raises(ConfigError, match="`tokenizer.ema_eps`: expected a number, got 'small'"):
        from_dict(VQBeTConfig, {"spec": SPEC, "tokenizer": {"ema_eps": "small"}})


@pytest.mark.parametrize(
    "data, message",
    [
        ({"spec": SPEC, "prior": {"n_heads": 6}}, "`prior`: unknown key(s) ['n_heads']"),
        ({"spec": SPEC, "prior": {"n_head": "six"}}, "`prior.n_head`: expected an integer, got 'six'"),
        ({"spec": {**SPEC, "fps": -1}}, "`spec.fps`: must be a finite number > 0"),
        ({"spec": {**SPEC, "cameras": {"top": [96, 96]}}}, "`spec.cameras.top`: expected [3, H, W]"),
        ({"spec": SPEC, "vision": {"pool": "max"}}, "`vision.pool`: got 'max', expected one of"),
        ({"spec": SPEC, "tokenizer": {"ema_decay": 1.5}}, "`tokenizer.ema_decay`: must be in (0, 1)"),
        ({"spec": SPEC, "heads": {"argmax": "yes"}}, "`heads.argmax`: expected true or false"),
        ({}, "missing required key(s) ['spec']"),
    ],
)
def test_bad_config_is_refused_with_key_path(data, message):
    with pytest.raises(ConfigError) as err:
        from_dict(VQBeTConfig, data)
    assert message in str(err.value)


def test_load_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("spec: {action_names: [x], joint_names: [x]}\nprior: {dropout: 2.0}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: `prior.dropout`"):
        load_yaml(VQBeTConfig, path)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_yaml(VQBeTConfig, tmp_path / "missing.yaml")


def test_bad_override_form_is_explained(tmp_path):
    save_yaml(from_dict(VQBeTConfig, {"spec": SPEC}), tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="key.path=value"):
        load_yaml(VQBeTConfig, tmp_path / "c.yaml", ["prior.n_layer"])


def test_to_dict_is_plain_yaml_data():
    data = to_dict(from_dict(VQBeTConfig, {"spec": SPEC}))
    assert data["spec"]["cameras"] == {"top": [3, 96, 96]}
    assert isinstance(data["vision"], dict)
