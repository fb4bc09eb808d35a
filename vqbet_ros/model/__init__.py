"""VQ-BeT model (pure PyTorch): tokenizer, observation encoders, GPT prior, heads, policy, checkpoints."""
from vqbet_ros.model.checkpoint import LoadedCheckpoint, load_checkpoint, save_checkpoint
from vqbet_ros.model.config import (FeatureSpec, HeadConfig, PriorConfig, TokenizerConfig, VisionConfig,
                                    VQBeTConfig)
from vqbet_ros.model.normalize import Normalizer
from vqbet_ros.model.policy import VQBeTPolicy

__all__ = [
    "FeatureSpec", "HeadConfig", "LoadedCheckpoint", "Normalizer", "PriorConfig", "TokenizerConfig",
    "VQBeTConfig", "VQBeTPolicy", "VisionConfig", "load_checkpoint", "save_checkpoint",
]
