"""Image lists: an ImageNet-style root, any folder (recursive) or a text file of paths.

Every list has a root; an item's key is its path relative to the root in posix form (the store's
`key`). Items are sorted by key (code point order), so the same inputs give the same list anywhere.
Hidden files and directories (name starting with ".") and names without an image extension are
skipped, never failed; a file that exists but does not decode fails later, per image.

- ImageNet root: `<root>/train/<wnid>/...` with wnids of the 1000 classes; label = class index,
  class_prompt = the class's text prompt (see class_names). Other entries of `<root>` (val/, ...) are ignored,
  plain files in `train/` are skipped, and an unknown directory in `train/` is an error.
- Folder: every image below the folder, label -1.
- List file: one path per line (blank lines and lines starting with "#" skipped), relative to the
  file's folder or absolute; the root is the file's folder, and absolute paths outside it keep their
  absolute path as key. Missing files are kept (they fail when decoded). Duplicates are merged.
  An optional second column, after a tab, gives the image's text prompts (see prompts.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from .class_names import class_by_wnid
from .errors import LabelingError
from .prompts import clean_phrases, split_column

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
_WNID = re.compile(r"^n\d{8}$")


class ImageItem(NamedTuple):
    key: str  # path relative to the list's root, posix separators
    label: int  # ImageNet class index, -1 unknown
    class_prompt: str | None  # the class's text prompt (from its label), None when unknown
    prompts: tuple[str, ...] = ()  # further text prompts (list column, prompt file)


@dataclass(frozen=True)
class ImageList:
    root: Path
    kind: str  # "imagenet" | "folder" | "list"
    items: tuple[ImageItem, ...]

    @property
    def sha256(self) -> str:
        """Hash of the (key, label, class_prompt[, prompts]) list: the input's identity in the provenance.

        Prompts enter only when an item has some, so lists without prompts keep their old hash."""
        digest = hashlib.sha256()
        for item in self.items:
            fields = list(item) if item.prompts else list(item[:3])
            digest.update(json.dumps(fields, ensure_ascii=False).encode("utf-8") + b"\n")
        return digest.hexdigest()

    def __len__(self) -> int:
        return len(self.items)


def is_image_name(path: str) -> bool:
    """True when the file name of `path` is visible and has an image extension (case-insensitive)."""
    name = os.path.basename(path)
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def list_images(source: str | os.PathLike) -> ImageList:
    """Detect the kind of `source` and list its images (see the module docstring)."""
    source = Path(source)
    if source.is_file():
        return _from_list_file(source)
    if not source.is_dir():
        raise LabelingError(f"image source not found: {source}")
    if _is_imagenet_root(source):
        return _from_imagenet(source)
    items = [ImageItem(key, -1, None) for key in _walk_images(source, source)]
    return ImageList(source.absolute(), "folder", tuple(sorted(items)))


def _is_imagenet_root(root: Path) -> bool:
    train = root / "train"
    return train.is_dir() and any(_WNID.match(p.name) and p.is_dir() for p in train.iterdir())


def _from_imagenet(root: Path) -> ImageList:
    items = []
    for class_dir in sorted((root / "train").iterdir()):
        if class_dir.name.startswith(".") or not class_dir.is_dir():
            continue
        if not _WNID.match(class_dir.name):
            raise LabelingError(f"{class_dir}: not a class directory (expected train/<wnid>/)")
        cls = class_by_wnid(class_dir.name)
        items += [ImageItem(key, cls.index, cls.prompt) for key in _walk_images(class_dir, root)]
    return ImageList(root.absolute(), "imagenet", tuple(sorted(items)))


def _walk_images(top: Path, root: Path) -> list[str]:
    """Keys (relative to root) of the visible image files below `top`; symlinked dirs followed once."""
    keys, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True, onerror=_unreadable):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink cycle or a second link to the same directory
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if is_image_name(name):
                key = Path(dirpath, name).relative_to(root).as_posix()
                if _utf8_ok(key):
                    keys.append(key)
    return keys


def _unreadable(err: OSError) -> None:
    """os.walk would skip a folder it cannot read, and the store would miss its images silently."""
    raise LabelingError(f"{err.filename}: cannot read this image folder ({err.strerror})")


def _utf8_ok(key: str) -> bool:
    """File names that are not valid UTF-8 cannot be stored as keys: skipped with a warning."""
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        log.warning("skipping a file whose name is not valid UTF-8: %r", key)
        return False
    return True


def _from_list_file(list_file: Path) -> ImageList:
    root = list_file.parent.absolute()
    prompts: dict[str, tuple[str, ...]] = {}
    try:
        text = list_file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LabelingError(
            f"{list_file}: not an image folder, nor a UTF-8 text list of image paths (byte {exc.start}: {exc.reason})"
        ) from None
    for raw in text.splitlines():
        path, _, column = raw.partition("\t")
        line = path.strip()
        if not line or line.startswith("#"):
            continue
        key = _list_key(root, Path(line))
        visible = Path(key).name if Path(key).is_absolute() else key
        if all(not part.startswith(".") for part in Path(visible).parts) and is_image_name(key):
            prompts[key] = tuple(clean_phrases([*prompts.get(key, ()), *split_column(column)]))
    return ImageList(root, "list", tuple(sorted(ImageItem(k, -1, None, p) for k, p in prompts.items())))


def _list_key(root: Path, path: Path) -> str:
    """Key of a list entry: relative to root when under it, otherwise the absolute path."""
    full = Path(os.path.normpath(root / path))
    try:
        return full.relative_to(root).as_posix()
    except ValueError:
        return full.as_posix()
