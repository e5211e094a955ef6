"""The two backend roles and what they return.

A semantic backend maps images to a class id per pixel on the canvas; an instance backend maps
images (and text prompts) to binary masks at original resolution. Both describe themselves by
`identity()` (recorded in the store's provenance) and hold their models for their whole life, so a
pipeline worker builds each backend once.
"""

from __future__ import annotations

import functools
import hashlib
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from datasets_spec import hashing


@dataclass
class Instances:
    """Instance masks of one image.

    masks:   bool [M, H, W] at the resolution of the image given (the original's, or a reduced
             decode's for a JPEG above the pixel limit)
    scores:  float32 [M], higher is better
    prompts: M entries: the text prompt that found each mask, or None
    source:  backend name
    dropped: candidates the backend removed before these masks, by reason (e.g. {"nms": 3})
    """

    masks: np.ndarray
    scores: np.ndarray
    prompts: list[str | None]
    source: str
    dropped: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        if self.masks.ndim != 3 or self.masks.dtype != bool:
            raise ValueError(f"masks must be bool [M, H, W], got {self.masks.dtype} {self.masks.shape}")
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if not len(self.masks) == len(self.scores) == len(self.prompts):
            raise ValueError("masks, scores and prompts must have the same length")

    @classmethod
    def empty(cls, height: int, width: int, source: str, dropped: dict | None = None) -> Instances:
        return cls(np.zeros((0, height, width), bool), np.zeros(0, np.float32), [], source, dict(dropped or {}))

    def __len__(self) -> int:
        return len(self.masks)


class SemanticBackend(ABC):
    """Images → class id per pixel at each image's canvas size.

    takes_device: True when the constructor takes `device` (where its models run): a GPU worker
    then passes its own unless the backend's parameters name one. False for CPU-only backends.
    """

    name: str
    takes_device: bool = True

    @abstractmethod
    def label_space(self) -> dict[int, str]:
        """Class id → name, ids in [0, 65535)."""

    @abstractmethod
    def identity(self) -> dict:
        """name, model id or path, checkpoint sha256 where a file, parameters (JSON-able)."""

    @abstractmethod
    def predict(self, images: list[np.ndarray], sizes: list[tuple[int, int]]) -> list[np.ndarray]:
        """images: [H, W, 3] uint8 RGB each; sizes: (h, w) per image (geometry.fit of the canvas).

        Returns one int32 [h, w] map per image: class id, -1 = no class.
        """


class InstanceBackend(ABC):
    """Images (+ text prompts) → instance masks at original resolution.

    uses_prompts: True for backends that find nothing without a text prompt (the job then refuses
    images that have none).
    takes_device: as for a semantic backend.
    """

    name: str
    uses_prompts: bool = False
    takes_device: bool = True

    @abstractmethod
    def identity(self) -> dict:
        """name, model ids or paths, checkpoint sha256 where a file, parameters (JSON-able)."""

    @abstractmethod
    def predict(self, images: list[np.ndarray], prompts: list[list[str]]) -> list[Instances]:
        """images: [H, W, 3] uint8 RGB each; prompts: text prompts per image (may be empty).

        Returns one Instances per image, masks at that image's (H, W).
        """


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a checkpoint file, computed once per process per (path, size, mtime)."""
    stat = os.stat(path)
    return _file_sha256(os.path.abspath(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    return hashing.file_sha256(path)


def model_reference(model: str | os.PathLike, config=None) -> dict:
    """How a model was named: a local file or dir gets its path and sha256, anything else is a hub
    id, with the commit that transformers resolved (`config._commit_hash`) when a config is given."""
    path = os.fspath(model)
    if os.path.isfile(path):
        return {"path": os.path.abspath(path), "sha256": file_sha256(path)}
    if os.path.isdir(path):
        return {"path": os.path.abspath(path), "sha256": dir_sha256(path)}
    return {"hub_id": path, "commit": getattr(config, "_commit_hash", None)}


def dir_sha256(path: str | os.PathLike) -> str:
    """sha256 over (relative name, sha256) of every visible file of a model directory: weights,
    config and processor settings (hidden entries such as .cache/ are left out)."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(f for f in files if not f.startswith(".")):
            full = os.path.join(root, name)
            digest.update(f"{os.path.relpath(full, path)}\t{file_sha256(full)}\n".encode())
    return digest.hexdigest()
