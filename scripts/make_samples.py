"""Write an ImageNet-style folder of sample photos: <out>/train/<wnid>/*.JPEG, no download needed.

The photos are scikit-image's bundled ones (public domain / CC0), each cut into varied crops,
flipped and recoloured, filed under a fitting ImageNet class. Two extra files show how failures are
recorded: a truncated JPEG and a text file named .JPEG.

    python scripts/make_samples.py OUT [--per-class 16] [--side 320]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

CLASSES = {  # ImageNet wnid → photo
    "n02123045": "chelsea",  # tabby cat
    "n03063599": "coffee",  # coffee mug
    "n03773504": "rocket",  # missile
    "n03791053": "stereo_motorcycle",  # motor scooter
}


def _photo(name: str) -> np.ndarray:
    image = getattr(data, name)()
    return image[0] if isinstance(image, tuple) else image


def _variant(image: np.ndarray, rng: np.random.Generator, side: int) -> Image.Image:
    h, w = image.shape[:2]
    scale = rng.uniform(0.5, 1.0)
    ch, cw = int(h * scale), int(w * rng.uniform(max(0.5, scale - 0.2), min(1.0, scale + 0.2)))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = image[y : y + ch, x : x + cw].astype(np.float32)
    crop = crop * rng.uniform(0.8, 1.2, 3) + rng.uniform(-20, 20)
    out = Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    out.thumbnail((side, side))
    return out


def make_samples(out, per_class: int = 16, side: int = 320, seed: int = 0, with_bad: bool = True) -> int:
    """Write the sample folder; returns the number of files written."""
    rng = np.random.default_rng(seed)
    count = 0
    for wnid, name in CLASSES.items():
        folder = Path(out) / "train" / wnid
        folder.mkdir(parents=True, exist_ok=True)
        photo = _photo(name)
        for i in range(per_class):
            _variant(photo, rng, side).save(folder / f"{wnid}_{i:04d}.JPEG", quality=90)
            count += 1
    if with_bad:
        folder = Path(out) / "train" / "n02123045"
        whole = (folder / "n02123045_0000.JPEG").read_bytes()
        (folder / "n02123045_broken.JPEG").write_bytes(whole[: len(whole) // 2])
        (folder / "n02123045_notes.JPEG").write_text("this file is not a picture")
        count += 2
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--per-class", type=int, default=16)
    parser.add_argument("--side", type=int, default=320)
    args = parser.parse_args()
    print(f"wrote {make_samples(args.out, args.per_class, args.side)} sample images to {args.out}")


if __name__ == "__main__":
    main()
