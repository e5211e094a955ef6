"""An ImageNet-style folder of real photos with the quirks ImageNet and users' folders have."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

TENCH, CRANE_BIRD = "n01440764", "n02012849"

GOOD = {  # key → (H, W) the labeler must see (after EXIF orientation)
    f"train/{TENCH}/gray.JPEG": (128, 96),
    f"train/{TENCH}/cmyk.JPEG": (120, 160),
    f"train/{TENCH}/png_inside.JPEG": (100, 150),
    f"train/{TENCH}/deep16.png": (90, 60),
    f"train/{TENCH}/rgba.png": (80, 120),
    f"train/{CRANE_BIRD}/exif_rot90.JPEG": (160, 120),
    f"train/{CRANE_BIRD}/tiny.JPEG": (5, 7),
    f"train/{CRANE_BIRD}/huge.JPEG": (4000, 6000),
    f"train/{CRANE_BIRD}/café_ñ_鳥.JPEG": (96, 128),
}
BAD = {  # key → start of the recorded failure reason
    f"train/{TENCH}/empty.JPEG": "empty file",
    f"train/{TENCH}/truncated.JPEG": "truncated image file",
    f"train/{CRANE_BIRD}/not_an_image.JPEG": "not an image",
}


def _photo(height: int, width: int) -> Image.Image:
    from skimage import data

    return Image.fromarray(data.chelsea()).resize((width, height))


def _jpeg_bytes(image: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90, **kwargs)
    return buf.getvalue()


def make_quirky_imagenet(root: Path, huge: bool = True) -> dict:
    """Write the images under root/train/<wnid>/ (plus files to skip). Returns {key: (H, W)} of good ones."""
    for wnid in (TENCH, CRANE_BIRD):
        (root / "train" / wnid).mkdir(parents=True, exist_ok=True)
    p = lambda key: root / key  # noqa: E731
    t = f"train/{TENCH}"
    c = f"train/{CRANE_BIRD}"
    _photo(128, 96).convert("L").save(p(f"{t}/gray.JPEG"), "JPEG")
    _photo(120, 160).convert("CMYK").save(p(f"{t}/cmyk.JPEG"), "JPEG")
    _photo(100, 150).save(p(f"{t}/png_inside.JPEG"), "PNG")
    deep = (np.linspace(0, 65535, 90 * 60).reshape(90, 60)).astype(np.uint16)
    Image.fromarray(deep).save(p(f"{t}/deep16.png"))
    rgba = _photo(80, 120).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(p(f"{t}/rgba.png"))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display: stored 120×160 (H×W) shows as 160×120
    p(f"{c}/exif_rot90.JPEG").write_bytes(_jpeg_bytes(_photo(120, 160), exif=exif.tobytes()))
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)).save(p(f"{c}/tiny.JPEG"))
    if huge:
        _photo(4000, 6000).save(p(f"{c}/huge.JPEG"), "JPEG", quality=70)
    _photo(96, 128).save(p(f"{c}/café_ñ_鳥.JPEG"), "JPEG")
    p(f"{t}/empty.JPEG").write_bytes(b"")
    whole = _jpeg_bytes(_photo(200, 300))
    p(f"{t}/truncated.JPEG").write_bytes(whole[: len(whole) // 2])
    p(f"{c}/not_an_image.JPEG").write_text("<html>this is not a picture</html>")
    p(f"{t}/.DS_Store").write_bytes(b"\x00\x01")  # hidden: skipped
    p(f"{t}/notes.txt").write_text("not an image name: skipped")
    return {k: v for k, v in GOOD.items() if huge or "huge" not in k}
