"""Typed options of the training data pipeline: augmentation (MAE's published recipe) and reading."""

from __future__ import annotations

from typing import Literal

import pydantic

from plumbing.config_fields import Bool, Count, Float, Positive, PositiveFloat, Probability, section

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@section
class DataConfig:
    """Options of `build_dataset` and of the DataLoader built around it.

    Augmentation: one RandomResizedCrop (area fraction `scale`, aspect ratio `ratio`, MAE's sampling)
    on the original image and a horizontal flip with probability `hflip`, applied identically to the
    image and its masks. `jpeg_draft` lets JPEGs decode at 1/2, 1/4 or 1/8 size (in the DCT domain)
    when the crop still holds at least img_size pixels per side there (faster on large photos;
    False decodes every image at full size).
    `decode`: "cpu" decodes and resizes the RGB in the loader workers; "gpu" has them send the JPEG
    files' bytes (with the same crop boxes and masks) and the training step decode, crop and resize
    them in batches on the GPU (training.data.gpu_decode; needs CUDA). Other files stay on the CPU.
    Reading: `num_workers` processes each keep `prefetch_factor` batches in flight (each batch's
    masks come from one asynchronous `Store.read_masks` call); `key_check` keys are looked up in
    the images root when the dataset is built, so a wrong root fails at once.
    """

    img_size: Positive = 224
    scale: tuple[Float, Float] = (0.2, 1.0)
    ratio: tuple[Float, Float] = (3 / 4, 4 / 3)
    hflip: Probability = 0.5
    mean: tuple[Float, Float, Float] = IMAGENET_MEAN
    std: tuple[PositiveFloat, PositiveFloat, PositiveFloat] = IMAGENET_STD
    jpeg_draft: Bool = True
    decode: Literal["cpu", "gpu"] = "cpu"
    num_workers: Count = 10
    prefetch_factor: Positive = 2
    pin_memory: Bool = True
    key_check: Count = 32

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> DataConfig:
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"data.scale must satisfy 0 < min <= max <= 1, got {self.scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"data.ratio must satisfy 0 < min <= max, got {self.ratio}")
        return self
