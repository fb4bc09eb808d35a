"""Tests that need `../shared` skip on a developer's machine without it, and fail in CI (`CI` set)."""
import pytest
from conftest import require_shared


def test_shared_dir_missing_fails_with_the_fix_in_ci(tmp_path):
    with pytest.raises(pytest.fail.Exception, match="is not present.*put it there.*in CI a missing"):
        require_shared(tmp_path / "shared", ci="true")


def test_shared_dir_missing_skips_outside_ci(tmp_path):
    with pytest.raises(pytest.skip.Exception, match="is not present"):
        require_shared(tmp_path / "shared", ci=None)
    assert require_shared(tmp_path, ci="true") == tmp_path
