"""Dense probe: a linear per-patch semantic head on frozen patch tokens, scored by mIoU.

Labels come from a c2fmae store (pseudo-labels, or exact ground truth in the same format); a store
key is an image path relative to the image folder. The image is letterboxed onto an img_size square
exactly as the store's canvas is (aspect kept, top-left anchored), so the canvas labels, resized to
img_size, line up with the pixels. Each patch token predicts, by one linear map, the class of each
of its (patch / stride)^2 cells of stride x stride pixels; a cell's target is the label at its centre
pixel, padding is ignored. Training and scoring are at that stride (4 by default, the resolution of
the pre-training label targets).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from datasets_spec import StoreError, open_store
from datasets_spec.geometry import image_to_canvas, resize_labels
from datasets_spec.schema import SEMANTIC_IGNORE
from training.errors import TrainingError
from training.eval.config import DenseConfig
from training.eval.folders import load_image
from training.eval.metrics import confusion, segmentation_scores
from training.eval.schedule import cosine_schedule
from training.ignore import IGNORE
from training.seeding import generator


class DenseHead(nn.Module):
    """patches [N, L, D] (L = g * g) -> logits [N, C, g * r, g * r] with r = patch / stride."""

    def __init__(self, dim: int, num_classes: int, cells: int):
        super().__init__()
        self.num_classes, self.cells = num_classes, cells
        self.linear = nn.Linear(dim, num_classes * cells * cells)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        n, length, _ = patches.shape
        g, r, c = math.isqrt(length), self.cells, self.num_classes
        out = self.linear(patches).view(n, g, g, c, r, r)
        return out.permute(0, 3, 1, 4, 2, 5).reshape(n, c, g * r, g * r)


class StoreLabeledImages(Dataset):
    """(image [3, s, s] normalised, cell labels [s / stride, s / stride] int64, -1 ignore) for each
    done image of the store at `labels`, the image read from `images_root / key`."""

    def __init__(self, labels, images_root, img_size: int, stride: int, mean, std):
        self.store = open_store(labels)
        self.root, self.size, self.stride = Path(images_root), img_size, stride
        self.indices = self.store.done_indices()
        if len(self.indices) == 0:
            raise TrainingError(f"{labels}: no labeled images in this store")
        self.keys = self.store.keys()
        self.mean = np.asarray(mean, np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(3, 1, 1)
        first = self.root / str(self.keys[self.indices[0]])
        if not first.is_file():
            raise TrainingError(
                f"{labels}: its key {self.keys[self.indices[0]]!r} is not an image "
                f"under {self.root} (is --train/--val the store's image root?)"
            )

    @property
    def num_classes(self) -> int:
        return max(self.store.label_space) + 1

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        index = int(self.indices[i])
        rgb = np.asarray(load_image(self.root / str(self.keys[index])))
        image = image_to_canvas(rgb, self.size).transpose(2, 0, 1).astype(np.float32) / 255.0
        semantic = resize_labels(self.store.read(index).semantic, self.size, self.size)
        cells = semantic[self.stride // 2 :: self.stride, self.stride // 2 :: self.stride].astype(np.int64)
        cells[cells == SEMANTIC_IGNORE] = IGNORE
        return torch.from_numpy((image - self.mean) / self.std), torch.from_numpy(cells)


def open_labeled(labels: str | None, role: str, images_root, img_size: int, stride: int, mean, std):
    if not labels:
        raise TrainingError(
            f"the dense probe needs --set dense.{role}_labels=STORE (a c2fmae store "
            f"whose keys are paths under --{role})"
        )
    try:
        return StoreLabeledImages(labels, images_root, img_size, stride, mean, std)
    except StoreError as exc:
        raise TrainingError(str(exc)) from None


def train_dense(
    feats: torch.Tensor, targets: torch.Tensor, num_classes: int, cfg: DenseConfig, seed: int, progress: bool = False
) -> DenseHead:
    """Fit a DenseHead on feats [N, L, D] to targets [N, g * r, g * r] (-1 ignore) with AdamW."""
    torch.manual_seed(seed)
    cells = targets.shape[-1] // math.isqrt(feats.shape[1])
    head = DenseHead(feats.shape[2], num_classes, cells)
    batch = min(cfg.batch_size, len(feats))
    steps_per_epoch = math.ceil(len(feats) / batch)
    optimizer = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = cosine_schedule(optimizer, cfg.epochs, cfg.warmup_epochs, steps_per_epoch)
    gen, loss_fn, step = generator(seed), nn.CrossEntropyLoss(ignore_index=IGNORE), 0
    for _ in tqdm(range(cfg.epochs), desc="dense probe", unit="epoch", disable=not progress):
        order = torch.randperm(len(feats), generator=gen)
        for start in range(0, len(feats), batch):
            idx = order[start : start + batch]
            schedule.step_update(step)
            loss = loss_fn(head(feats[idx]), targets[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    return head.eval()


@torch.no_grad()
def score_dense(head: DenseHead, feats: torch.Tensor, targets: torch.Tensor, chunk: int = 256) -> dict[str, float]:
    """mIoU and pixel accuracy of the head's argmax over feats [N, L, D] against targets [N, h, w]."""
    conf = torch.zeros(head.num_classes, head.num_classes, dtype=torch.int64)
    for start in range(0, len(feats), chunk):
        pred = head(feats[start : start + chunk]).argmax(dim=1)
        conf += confusion(pred, targets[start : start + chunk], head.num_classes)
    return segmentation_scores(conf)
