"""VQBeTConfig refuses numbers a checkpoint cannot run with, naming the field."""
import math

import pytest
from policy_helpers import tiny_config

from vqbet_ros.config_io import ConfigError, from_dict, to_dict


@pytest.mark.parametrize("section, key, value", [
    ("spec", "fps", math.nan), ("spec", "fps", math.inf), ("spec", "fps", 0.0), ("spec", "fps", 1e6),
    ("heads", "temperature", math.inf), ("heads", "temperature", math.nan), ("heads", "offset_weight", math.nan),
    ("prior", "n_head", 0), ("prior", "n_layer", 0), ("prior", "dropout", math.nan),
    ("tokenizer", "ema_eps", 0.0), ("vision", "feature_dim", 0),
])
def test_vqbet_config_refuses_non_finite_or_out_of_range_naming_field(section, key, value):
    data = to_dict(tiny_config())
    data[section][key] = value
    with pytest.raises(ConfigError, match=rf"`{section}\.{key}`"):
        from_dict(type(tiny_config()), data)
