"""Min-max Normalizer: [-1, 1] mapping, constant dimensions, numpy/torch parity, refused keys."""
import numpy as np
import pytest
import torch

from vqbet_ros import constants
from vqbet_ros.model.normalize import Normalizer

STATS = {
    constants.STATE: {"min": np.array([0.0, -2.0, 5.0]), "max": np.array([10.0, 2.0, 5.0])},
    constants.ACTION: {"min": np.array([1.0, 1.0]), "max": np.array([3.0, 5.0]), "mean": np.array([2.0, 3.0])},
    constants.image_key("top"): {"min": np.zeros((3, 1, 1)), "max": np.ones((3, 1, 1))},
}


def test_normalize_maps_min_and_max_to_minus_one_and_one():
    norm = Normalizer(STATS)
    x = np.array([[0.0, -2.0, 5.0], [10.0, 2.0, 5.0], [5.0, 0.0, 5.0]])
    y = norm.normalize(constants.STATE, x)
    np.testing.assert_allclose(y, [[-1, -1, 0], [1, 1, 0], [0, 0, 0]])


def test_normalize_constant_dimension_maps_to_zero_and_back_to_its_value():
    norm = Normalizer(STATS)
    y = norm.normalize(constants.STATE, np.array([3.0, 1.0, 5.0]))
    assert y[2] == 0.0
    back = norm.unnormalize(constants.STATE, np.array([0.3, -0.7, 0.9]))
    assert back[2] == 5.0


def test_unnormalize_inverts_normalize_for_numpy_and_torch_with_leading_dims():
    norm = Normalizer(STATS)
    x = np.random.default_rng(0).uniform(1.0, 3.0, size=(4, 5, 2))
    np.testing.assert_allclose(norm.unnormalize(constants.ACTION, norm.normalize(constants.ACTION, x)), x)
    xt = torch.from_numpy(x).float()
    yt = norm.normalize(constants.ACTION, xt)
    assert isinstance(yt, torch.Tensor) and yt.dtype == torch.float32 and yt.shape == (4, 5, 2)
    torch.testing.assert_close(yt, torch.from_numpy(norm.normalize(constants.ACTION, x)).float())
    torch.testing.assert_close(norm.unnormalize(constants.ACTION, yt), xt)


def test_normalize_refuses_image_keys_and_unknown_keys_by_name():
    norm = Normalizer(STATS)
    with pytest.raises(KeyError, match="observation.images.top"):
        norm.normalize(constants.image_key("top"), np.zeros((3, 4, 4)))
    with pytest.raises(KeyError, match="observation.environment_state"):
        norm.normalize(constants.ENV_STATE, np.zeros(18))


def test_normalize_wrong_last_dimension_names_the_key():
    with pytest.raises(ValueError, match="`action`"):
        Normalizer(STATS).normalize(constants.ACTION, np.zeros((4, 3)))


def test_normalize_accepts_lists_and_integer_tensors():
    norm = Normalizer(STATS)
    np.testing.assert_allclose(norm.normalize(constants.ACTION, [3.0, 1.0]), [1.0, -1.0])
    out = norm.normalize(constants.ACTION, torch.tensor([[1, 5]]))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[-1.0, 1.0]]))
