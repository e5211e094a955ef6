"""Typed options of the training data pipeline: augmentation (MAE's published recipe) and reading."""

from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DECODERS = ("cpu", "gpu")  # where the RGB is decoded, data.decode


@dataclass
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

    img_size: int = 224
    scale: tuple[float, float] = (0.2, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    jpeg_draft: bool = True
    decode: str = "cpu"
    num_workers: int = 10
    prefetch_factor: int = 2
    pin_memory: bool = True
    key_check: int = 32

    def __post_init__(self) -> None:
        for name in ("scale", "ratio", "mean", "std"):  # YAML gives lists
            setattr(self, name, tuple(float(v) for v in getattr(self, name)))
        if self.img_size < 1:
            raise ValueError(f"data.img_size must be positive, got {self.img_size}")
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"data.scale must satisfy 0 < min <= max <= 1, got {self.scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"data.ratio must satisfy 0 < min <= max, got {self.ratio}")
        if not 0 <= self.hflip <= 1:
            raise ValueError(f"data.hflip must be a probability, got {self.hflip}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"data.mean/std need 3 values each, std > 0, got {self.mean}/{self.std}")
        if self.decode not in DECODERS:
            raise ValueError(f"data.decode must be one of {', '.join(DECODERS)}, got {self.decode!r}")
        if self.num_workers < 0 or self.prefetch_factor < 1 or self.key_check < 0:
            raise ValueError(f"data.num_workers must be >= 0, prefetch_factor >= 1 and key_check >= 0, "
                             f"got {self.num_workers}, {self.prefetch_factor}, {self.key_check}")
