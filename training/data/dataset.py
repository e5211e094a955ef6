"""The store's done images as training samples: RGB decoded from the original + masks, cropped together.

A sample is addressed by (position, epoch): position in [0, len) picks the store image, and all its
randomness comes from np.random.default_rng([seed, epoch, store_index]), so a sample is the same in
any process, worker count or DDP layout, and a resumed run replays it exactly.
"""

from __future__ import annotations

import functools
import os
import signal
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from datasets_spec import Store, StoreError, open_store, storage
from datasets_spec.decode import MAX_PIXELS, decode_crop

from .config import DataConfig
from .gpu_decode import collate, raw_pixels
from .parent_watch import exit_with
from .transforms import crop_masks, draw, normalize
from .worker_start import worker_context


class StoreDataset(Dataset):
    """Training samples over the done images of a store, in ascending store index.

    Each sample is a dict (the training batch contract, docs/contracts.md):
      image [3, s, s] float32 normalised, semantic [s, s] int64 (-1 ignore),
      instance [s, s] int64 (0 none; never -1: crops lie inside the image), index int64 scalar
      (store index); s = img_size. With data.decode: gpu, "image" is replaced by what the training
      step decodes it from ("jpeg", "crop", "rgb": gpu_decode.raw_pixels).
    The open store is never pickled: each process (DataLoader worker) opens it on first use.
    """

    def __init__(self, cfg: DataConfig, store_path, images_root, seed: int):
        self.cfg, self.seed = cfg, int(seed)
        self.store_path, self.images_root = storage.normalize(store_path), Path(images_root)
        store = open_store(self.store_path)
        self.indices = store.done_indices()  # int64 [M] store index of each position
        if len(self.indices) == 0:
            raise StoreError(f"{self.store_path}: no done images (label it first, or check its markers)")
        if not store.label_space:
            raise StoreError(f"{self.store_path}: empty label space")
        self.num_classes = max(store.label_space) + 1
        self.orig_hw, self.valid_hw = store.checked_geometry(self.indices)  # int32 [M, 2]
        # the labeler's pixel limit (stores from before it was recorded: the ceiling it had then)
        self.max_pixels = int((store.provenance.get("job") or {}).get("max_pixels", MAX_PIXELS))
        # utf-8 bytes in one numpy array: compact to pickle into each worker, no per-key objects.
        self.keys = np.char.encode(store.keys()[self.indices].astype(str), "utf-8")
        check_images_root(self.images_root, self.keys, cfg.key_check)
        self._store: Store | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_store": None}

    def open(self) -> Store:
        """This process's store handle, opened on first use (a pickled copy starts without one)."""
        if self._store is None:
            self._store = open_store(self.store_path)
        return self._store

    def __getitem__(self, item) -> dict:
        """item: (position, epoch) → one sample dict."""
        return self.__getitems__([item])[0]

    def __getitems__(self, items) -> list[dict]:
        """A batch of (position, epoch) items → sample dicts; all masks read in one batched call.

        The DataLoader calls this with a whole batch: masks read together beat reads one by one
        (benchmarks/train_step.py, figures in docs/performance.md); decoding the RGB dominates
        a sample's cost.
        """
        items = [_split(item, len(self)) for item in items]
        semantic, instance = self.open().read_masks([self.indices[pos] for pos, _ in items])
        return [self._sample(pos, epoch, semantic[j], instance[j]) for j, (pos, epoch) in enumerate(items)]

    def image_path(self, pos: int) -> Path:
        return self.images_root / self.keys[pos].decode("utf-8")

    def rgb(self, pos: int, box, out_hw) -> np.ndarray:
        """The box (top, left, h, w) of position `pos`'s original image resized to out_hw (oh, ow):
        [oh, ow, 3] uint8, through the decoder the labeler used (docs/dataset-format.md)."""
        return decode_crop(
            self.image_path(pos), box, out_hw, self.orig_hw[pos], draft=self.cfg.jpeg_draft, max_pixels=self.max_pixels
        )

    def _sample(self, pos: int, epoch: int, semantic: np.ndarray, instance: np.ndarray) -> dict:
        """Draw the box and flip, decode the RGB through the box, map the box onto the canvas masks.

        semantic, instance: [S, S] uint16 canvas masks of the image at `pos`.
        """
        index, size = int(self.indices[pos]), self.cfg.img_size
        box, flip = draw(np.random.default_rng([self.seed, epoch, index]), self.orig_hw[pos], self.cfg)
        sem, inst = crop_masks(semantic, instance, self.orig_hw[pos], self.valid_hw[pos], box, size)
        if flip:
            sem, inst = sem[:, ::-1], inst[:, ::-1]
        return {
            **self._pixels(pos, box, flip),
            "semantic": torch.from_numpy(np.ascontiguousarray(sem)),
            "instance": torch.from_numpy(np.ascontiguousarray(inst)),
            "index": torch.tensor(index, dtype=torch.int64),
        }

    def _pixels(self, pos: int, box, flip: bool) -> dict:
        """{"image": [3, s, s] float32 normalised} of the box, flipped; with data.decode: gpu what
        the training step decodes it from (gpu_decode.raw_pixels)."""
        if self.cfg.decode == "gpu":
            return raw_pixels(self, pos, box, flip)
        rgb = self.rgb(pos, box, (self.cfg.img_size, self.cfg.img_size))
        rgb = rgb[:, ::-1] if flip else rgb
        return {"image": torch.from_numpy(normalize(rgb, self.cfg.mean, self.cfg.std))}


def _split(item, length: int) -> tuple[int, int]:
    """(position, epoch) with the position checked; a bare position means epoch 0."""
    pos, epoch = item if isinstance(item, (tuple, list)) else (item, 0)
    pos, epoch = int(pos), int(epoch)
    if not 0 <= pos < length:
        raise IndexError(f"position {pos} out of range [0, {length})")
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    return pos, epoch


def check_images_root(root: Path, keys: np.ndarray, count: int) -> None:
    """Look up `count` keys spread over `keys` (utf-8 bytes) under `root`; name the first missing."""
    if not root.is_dir():
        raise ValueError(f"{root}: images root is not a directory")
    picks = np.unique(np.linspace(0, len(keys) - 1, max(1, min(count, len(keys)))).astype(np.int64))
    missing = [keys[i].decode("utf-8") for i in picks if not (root / keys[i].decode("utf-8")).is_file()]
    if missing:
        raise ValueError(
            f"{root}: no image file for store key '{missing[0]}' "
            f"({len(missing)} of {len(picks)} sampled keys missing; is this the labeled root?)"
        )


def build_dataset(cfg: DataConfig, store_path, images_root, seed: int) -> StoreDataset:
    """The training dataset over the done images of the store at `store_path`."""
    return StoreDataset(cfg, store_path, images_root, seed)


def worker_init_fn(worker_id: int, trainer_pid: int | None = None) -> None:
    """DataLoader hook: exit when the trainer `trainer_pid` dies, ignore SIGTERM (see fork_server:
    PyTorch gives each worker a SIGTERM handler of its own, after the fork), and the store opened
    before the first batch."""
    if trainer_pid is not None:
        exit_with(trainer_pid)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    dataset = get_worker_info().dataset
    if isinstance(dataset, StoreDataset):
        dataset.open()


def loader_kwargs(cfg: DataConfig) -> dict:
    """DataLoader keyword arguments for `cfg`: workers, read-ahead, pinning, worker start hook, and
    with data.decode: gpu the batch collation of gpu_decode.

    Workers start from a fork server, never by forking the trainer: tensorstore aborts a forked child
    once the parent has used it (and the trainer has, to list the done images). Call it in the
    trainer process: the workers exit when that process dies (`parent_watch`).
    """
    workers = cfg.num_workers > 0
    return {
        "multiprocessing_context": worker_context() if workers else None,
        "num_workers": cfg.num_workers,
        "prefetch_factor": cfg.prefetch_factor if workers else None,
        "persistent_workers": workers,
        "pin_memory": cfg.pin_memory and torch.cuda.is_available(),
        "worker_init_fn": functools.partial(worker_init_fn, trainer_pid=os.getpid()) if workers else None,
        **({"collate_fn": collate} if cfg.decode == "gpu" else {}),
    }
