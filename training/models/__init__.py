"""C2FMAE models: config, the model, named presets."""

from training.models.c2fmae import C2FMAE
from training.models.config import ARCH_PRESETS, ModelConfig
from training.models.factory import build_model, create_model, list_models, model_config, register_model

__all__ = [
    "ARCH_PRESETS",
    "C2FMAE",
    "ModelConfig",
    "build_model",
    "create_model",
    "list_models",
    "model_config",
    "register_model",
]
