"""The model layer is pure PyTorch: nothing under vqbet_ros/model may import ROS."""
import re
from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parents[1] / "vqbet_ros" / "model"


def test_model_package_never_mentions_rclpy_or_ros_messages():
    offenders = [p.name for p in MODEL_DIR.glob("*.py") if re.search(r"rclpy|_msgs\b", p.read_text())]
    assert offenders == []


def test_model_package_exports_public_api():
    import vqbet_ros.model as model

    for name in ("VQBeTPolicy", "VQBeTConfig", "Normalizer", "save_checkpoint", "load_checkpoint",
                 "LoadedCheckpoint"):
        assert hasattr(model, name), name
