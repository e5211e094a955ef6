"""`classic`: the embedded OpenCV-only labeler — CPU, no weights, deterministic, and weak.

Per image, on a copy whose longer side is WORK_SIDE pixels:
1. GrabCut (OpenCV's RNG seeded before each call, image blurred 3×3) from a prior: a `margin`
   border is background, a centre ellipse of `seed_fraction` of the size is surely object and the
   ellipse of 0.8 of the size is probably object. The foreground is taken as "the ImageNet object";
   the seed ellipse guarantees one, so every image gets an object near its centre.
2. Foreground connected components (8-connected) of at least `min_fraction` of the image are the
   instances; score = the component's share of the foreground pixels (not a confidence).
3. Background pixels are clustered in CIE Lab by k-means (numpy, init at lightness quantiles, so no
   randomness); clusters are ordered darkest to lightest and median-filtered into regions.

Label space: 0 "object", then 1..k "background (lightness band i of k)", darkest first.

How weak it is: GrabCut assumes one object near the centre that differs in colour from its
surroundings. It misses off-centre, thin or camouflaged objects, merges touching objects into one
instance, and often grabs background of similar colour. The background "classes" are colour bands,
not semantics (sky and a white wall are the same class). Use it to run the pipeline anywhere, for
smoke tests and debugging — not to train a model you care about.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import cv2
import numpy as np

from datasets_spec.geometry import fit, resize_labels

from ..errors import LabelingError
from . import register_backend
from .base import InstanceBackend, Instances, SemanticBackend

WORK_SIDE = 96  # longer side of the working copy (GrabCut cost grows with its area)
_CACHE_SIZE = 8  # the semantic and instance roles on one image share one segmentation
_CACHE: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()


class ClassicSegmenter:
    """The shared computation of both classic roles (see the module docstring)."""

    takes_device = False  # OpenCV on the CPU: no device to choose

    def __init__(self, clusters=4, margin=0.05, seed_fraction=0.2, iterations=2, min_fraction=0.01, seed=0):
        if not 1 <= clusters <= 16:
            raise LabelingError(f"classic: clusters must be in 1..16, got {clusters}")
        self.params = dict(
            clusters=clusters,
            margin=margin,
            seed_fraction=seed_fraction,
            iterations=iterations,
            min_fraction=min_fraction,
            seed=seed,
            work_side=WORK_SIDE,
        )

    def label_space(self) -> dict[int, str]:
        k = self.params["clusters"]
        return {0: "object", **{i: f"background (lightness band {i} of {k})" for i in range(1, k + 1)}}

    def segment(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """image [H, W, 3] uint8 → (semantic [h0, w0] int32, components [h0, w0] int32) at work size.

        components: 0 = background, 1..M = instances in order of decreasing area.
        """
        digest = hashlib.blake2b(image.tobytes(), digest_size=16, key=str(image.shape).encode()).digest()
        key = (digest, tuple(sorted(self.params.items())))
        if key not in _CACHE:
            _CACHE[key] = self._segment(image)
            if len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        return _CACHE[key]

    def _segment(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h0, w0 = fit(image.shape[0], image.shape[1], WORK_SIDE)
        small = cv2.resize(image, (w0, h0), interpolation=cv2.INTER_AREA)
        components = self._components(self._grabcut(small))
        semantic = np.where(components > 0, 0, 1 + self._background_bands(small, components == 0))
        return semantic.astype(np.int32), components

    def _grabcut(self, small: np.ndarray) -> np.ndarray:
        """[h0, w0, 3] uint8 → bool foreground [h0, w0]."""
        h0, w0 = small.shape[:2]
        mask = self._prior(h0, w0)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        bgr = cv2.GaussianBlur(np.ascontiguousarray(small[:, :, ::-1]), (3, 3), 0)
        cv2.setRNGSeed(self.params["seed"])
        try:
            cv2.grabCut(bgr, mask, None, bgd, fgd, self.params["iterations"], cv2.GC_INIT_WITH_MASK)
        except cv2.error:  # degenerate colour statistics (e.g. a flat image): keep the prior
            pass
        return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)

    def _prior(self, h0: int, w0: int) -> np.ndarray:
        """GrabCut's starting labels [h0, w0] uint8: border = background, centre ellipse = object."""
        dy, dx = round(h0 * self.params["margin"]), round(w0 * self.params["margin"])
        mask = np.full((h0, w0), cv2.GC_BGD, np.uint8)
        mask[dy : h0 - dy, dx : w0 - dx] = cv2.GC_PR_BGD
        centre = (w0 // 2, h0 // 2)
        for fraction, value in ((0.8, cv2.GC_PR_FGD), (self.params["seed_fraction"], cv2.GC_FGD)):
            axes = (max(1, round(w0 * fraction / 2)), max(1, round(h0 * fraction / 2)))
            cv2.ellipse(mask, centre, axes, 0, 0, 360, value, -1)
        return mask

    def _components(self, foreground: np.ndarray) -> np.ndarray:
        """bool [h0, w0] → int32 [h0, w0]: components above min_fraction, 1 = largest."""
        count, labels, stats, _ = cv2.connectedComponentsWithStats(foreground.astype(np.uint8), connectivity=8)
        areas = stats[1:, cv2.CC_STAT_AREA]
        keep = np.flatnonzero(areas >= self.params["min_fraction"] * foreground.size)
        order = keep[np.argsort(-areas[keep], kind="stable")]
        remap = np.zeros(count, np.int32)
        remap[order + 1] = np.arange(1, len(order) + 1)
        return remap[labels]

    def _background_bands(self, small: np.ndarray, background: np.ndarray) -> np.ndarray:
        """k-means of background pixels in Lab → int32 [h0, w0] band 0..k-1 (darkest first) everywhere."""
        lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32)
        samples = lab[background.reshape(-1)] if background.any() else lab
        centres = _kmeans(samples, self.params["clusters"])
        nearest = ((lab[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1).astype(np.uint8)
        return cv2.medianBlur(nearest.reshape(background.shape), 5).astype(np.int32)


def _kmeans(samples: np.ndarray, k: int, iterations: int = 8) -> np.ndarray:
    """Deterministic k-means on [P, 3] float32 → centres [k, 3] sorted by the first channel (L)."""
    order = np.argsort(samples[:, 0], kind="stable")
    quantiles = ((np.arange(k) + 0.5) / k * len(samples)).astype(int)
    centres = samples[order[quantiles]].copy()
    for _ in range(iterations):
        assign = ((samples[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
        for c in range(k):
            members = samples[assign == c]
            if len(members):
                centres[c] = members.mean(0)
    return centres[np.argsort(centres[:, 0], kind="stable")]


@register_backend("semantic", "classic")
class ClassicSemantic(ClassicSegmenter, SemanticBackend):
    """Semantic role of `classic`: object vs. background lightness bands (see module docstring)."""

    def identity(self) -> dict:
        return {"name": self.name, "role": "semantic", "params": self.params}

    def predict(self, images, sizes):
        """images: [H, W, 3] uint8 each; sizes: (h, w) → int32 [h, w] each."""
        return [resize_labels(self.segment(im)[0], h, w) for im, (h, w) in zip(images, sizes)]


@register_backend("instance", "classic")
class ClassicInstances(ClassicSegmenter, InstanceBackend):
    """Instance role of `classic`: foreground components of GrabCut (prompts are not used)."""

    def identity(self) -> dict:
        return {"name": self.name, "role": "instance", "params": self.params}

    def predict(self, images, prompts):
        """images: [H, W, 3] uint8 each → Instances with masks [M, H, W] at original size."""
        return [self._instances(image) for image in images]

    def _instances(self, image: np.ndarray) -> Instances:
        components = self.segment(image)[1]
        height, width = image.shape[:2]
        count = int(components.max())
        if count == 0:
            return Instances.empty(height, width, self.name)
        masks = np.stack([_upsample_mask(components == i, height, width) for i in range(1, count + 1)])
        areas = np.bincount(components.reshape(-1), minlength=count + 1)[1:]
        return Instances(masks, areas / areas.sum(), [None] * count, self.name)


def _upsample_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """bool [h0, w0] → bool [height, width], bilinear then ≥ ½ (smoother than nearest)."""
    up = cv2.resize(mask.astype(np.uint8) * 255, (width, height), interpolation=cv2.INTER_LINEAR)
    return up >= 128
