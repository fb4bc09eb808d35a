"""The model package's public names (that it imports no ROS is checked by `test_package_layers.py`)."""


def test_model_package_exports_public_api():
    import vqbet_ros.model as model

    for name in ("VQBeTPolicy", "VQBeTConfig", "Normalizer", "save_checkpoint", "load_checkpoint",
                 "LoadedCheckpoint"):
        assert hasattr(model, name), name
