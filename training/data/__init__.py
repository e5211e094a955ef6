"""Training data: the store's done images as augmented (image, semantic, instance) samples."""

from .config import DataConfig
from .dataset import StoreDataset, build_dataset, loader_kwargs, worker_init_fn

__all__ = ["DataConfig", "StoreDataset", "build_dataset", "loader_kwargs", "worker_init_fn"]
