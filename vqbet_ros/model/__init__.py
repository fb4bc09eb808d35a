"""VQ-BeT model (pure PyTorch): tokenizer, observation encoders, GPT prior, heads, policy, checkpoints.

The public names below are imported lazily, so `import vqbet_ros.model.config` stays free of torch.
"""
import importlib

_EXPORTS = {
    "FeatureSpec": "config", "HeadConfig": "config", "PriorConfig": "config", "TokenizerConfig": "config",
    "VisionConfig": "config", "VQBeTConfig": "config",
    "Normalizer": "normalize",
    "VQBeTPolicy": "policy",
    "LoadedCheckpoint": "checkpoint", "load_checkpoint": "checkpoint", "save_checkpoint": "checkpoint",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vqbet_ros.model' has no attribute {name!r}")
    return getattr(importlib.import_module(f"vqbet_ros.model.{_EXPORTS[name]}"), name)
