"""Image lists: an ImageNet-style root, any folder (recursive) or a text file of paths; the first
two also as an object-storage prefix (s3://bucket/prefix, gs://bucket/prefix).

Every list has a root; an item's key is its path relative to the root in posix form (the store's
`key`). Items are sorted by key (code point order), so the same inputs give the same list anywhere.
Hidden files and directories (name starting with ".") and names without an image extension are
skipped, never failed; a file that exists but does not decode fails later, per image.

- ImageNet root: `<root>/train/<wnid>/...` with wnids of the 1000 classes; label = class index,
  class_prompt = the class's text prompt (see class_names). Other entries of `<root>` (val/, ...) are ignored,
  plain files in `train/` are skipped, and an unknown directory in `train/` is an error.
- Folder: every image below the folder, label -1.
- List file: one path per line (blank lines and lines starting with "#" skipped), relative to the
  file's folder or absolute, or an object's URL (s3://bucket/key, gs://...); the root is the file's
  folder, and absolute paths outside it keep their absolute path as key, as URLs do. Missing files
  are kept (they fail when decoded). Duplicates are merged.
  An optional second column, after a tab, gives the image's text prompts (see prompts.py).
- A bucket prefix: its objects listed through datasets_spec.storage (the store's endpoint,
  credentials and retries), read as the same folder on a disk would be (the same kinds, keys,
  labels and so the same input hash); the root is the URL. A prefix with no objects is an error.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from datasets_spec import storage

from .class_names import class_by_wnid
from .errors import LabelingError
from .prompts import clean_phrases, split_column

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
_SUFFIXES = tuple(IMAGE_EXTENSIONS)
_WNID = re.compile(r"^n\d{8}$")
_KEY = np.dtypes.StringDType()
_HASH_ROWS = 65536  # rows hashed per update: bounds the text held at once


class ImageItem(NamedTuple):
    key: str  # path relative to the list's root, posix separators
    label: int  # ImageNet class index, -1 unknown
    class_prompt: str | None  # the class's text prompt (from its label), None when unknown
    prompts: tuple[str, ...] = ()  # further text prompts (list column, prompt file)


class ImageItems(Sequence[ImageItem]):
    """A list's items kept as columns; an ImageItem is built when one is asked for. At ImageNet's
    1.28M images, ImageItem tuples and their key strings would take ~220 MB and seconds to build.

    keys: str [N] (numpy StringDType); labels: int32 [N]; names: label → class name (an item whose
    label is not in it has none); prompts: one tuple of phrases per item, or None when no item has any.
    A slice is a view of the same kind; it pickles only its own rows (one shard sent to a worker).
    """

    def __init__(self, keys, labels, names: dict[int, str], prompts: Sequence[tuple[str, ...]] | None = None):
        self.keys = np.asarray(keys, dtype=_KEY)
        self.labels = np.asarray(labels, dtype=np.int32)
        self.names = names
        self.prompts = tuple(prompts) if prompts is not None and any(prompts) else None
        if not len(self.keys) == len(self.labels) == len(self.prompts or self.keys):
            raise ValueError("ImageItems: columns of different lengths")

    def with_prompts(self, prompts: Sequence[tuple[str, ...]]) -> ImageItems:
        """The same items with these prompts, one tuple per item."""
        return ImageItems(self.keys, self.labels, self.names, prompts)

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index):
        if isinstance(index, slice):
            prompts = None if self.prompts is None else self.prompts[index]
            return ImageItems(self.keys[index], self.labels[index], self.names, prompts)
        label = int(self.labels[index])
        prompts = () if self.prompts is None else self.prompts[index]
        return ImageItem(str(self.keys[index]), label, self.names.get(label), prompts)

    def __iter__(self) -> Iterator[ImageItem]:
        labels = self.labels.tolist()
        prompts = itertools.repeat(()) if self.prompts is None else self.prompts
        columns = (self.keys.tolist(), labels, map(self.names.get, labels), prompts)
        return itertools.starmap(ImageItem, zip(*columns))

    def __eq__(self, other) -> bool:
        return list(self) == list(other) if isinstance(other, ImageItems) else NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return f"ImageItems({len(self)} items{f', first {self[0]!r}' if len(self) else ''})"


@dataclass(frozen=True)
class ImageList:
    root: Path | str  # a local folder, or an object-storage URL (storage.normalize's form)
    kind: str  # "imagenet" | "folder" | "list"
    items: ImageItems

    @property
    def sha256(self) -> str:
        """Hash of the (key, label, class_prompt[, prompts]) list: the input's identity in the provenance.

        Prompts enter only when an item has some, so lists without prompts keep their old hash."""
        digest = hashlib.sha256()
        for start in range(0, len(self.items), _HASH_ROWS):
            digest.update("".join(_json_lines(self.items[start : start + _HASH_ROWS])).encode("utf-8"))
        return digest.hexdigest()

    def location(self, key: str) -> Path | str:
        """Where image `key` is: a local path, or an object's URL (under a URL root, or a list's URL entry)."""
        return key if storage.is_url(key) else storage.join(self.root, key)

    def __len__(self) -> int:
        return len(self.items)


def _json_lines(items: ImageItems) -> Iterator[str]:
    """`json.dumps(fields, ensure_ascii=False) + "\\n"` per item, fields as in `ImageList.sha256`.
    Items without prompts are formatted here directly: the same text, several times faster."""
    quote = json.encoder.encode_basestring  # json.dumps' string encoder when ensure_ascii=False
    names = {label: quote(name) for label, name in items.names.items()}
    prompts = itertools.repeat(()) if items.prompts is None else items.prompts
    for key, label, extra in zip(items.keys.tolist(), items.labels.tolist(), prompts):
        if extra:
            yield json.dumps([key, label, items.names.get(label), list(extra)], ensure_ascii=False) + "\n"
        else:
            yield f"[{quote(key)}, {label}, {names.get(label, 'null')}]\n"


def is_image_name(path: str) -> bool:
    """True when the file name of `path` is visible and has an image extension (case-insensitive)."""
    return _is_image_file_name(os.path.basename(path))


def _is_image_file_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(_SUFFIXES)


def list_images(source: str | os.PathLike) -> ImageList:
    """Detect the kind of `source` and list its images (see the module docstring)."""
    if storage.is_url(str(source)):
        return _from_bucket(str(source))
    source = Path(source)
    if source.is_file():
        return _from_list_file(source)
    if not source.is_dir():
        raise LabelingError(f"image source not found: {source}")
    if _is_imagenet_root(source):
        return _from_imagenet(source)
    keys = sorted(_walk_images(source, source))
    return ImageList(source.absolute(), "folder", ImageItems(keys, np.full(len(keys), -1), {}))


def _is_imagenet_root(root: Path) -> bool:
    train = root / "train"
    return train.is_dir() and any(_WNID.match(p.name) and p.is_dir() for p in train.iterdir())


def _from_imagenet(root: Path) -> ImageList:
    """As columns. Wnids all have 9 characters, so the keys of sorted class directories, each
    sorted, are sorted as a whole. The keys become one array at the end: gathered in pieces, the
    pieces' memory would stay with the process after they were joined."""
    keys, labels, counts, names = [], [], [], {}
    with os.scandir(root / "train") as entries:
        class_dirs = sorted(entries, key=lambda entry: entry.name)
    for class_dir in class_dirs:
        if class_dir.name.startswith(".") or not class_dir.is_dir():
            continue
        if not _WNID.match(class_dir.name):
            raise LabelingError(f"{class_dir.path}: not a class directory (expected train/<wnid>/)")
        cls = class_by_wnid(class_dir.name)
        found = sorted(_walk_images(Path(class_dir.path), root))
        keys += found
        labels.append(cls.index)
        counts.append(len(found))
        names[cls.index] = cls.prompt
    items = ImageItems(keys, np.repeat(np.asarray(labels, np.int32), counts), names)
    return ImageList(root.absolute(), "imagenet", items)


def _from_bucket(url: str) -> ImageList:
    """The objects below the prefix `url` as an ImageNet root or a folder. Keys come sorted from
    the listing, so an ImageNet list is its `train/<wnid>/` keys in listing order."""
    try:
        root = storage.normalize(url)
        names = storage.list_all(root)
    except (OSError, ValueError) as exc:  # a missing bucket, refused credentials, a bad URL
        raise LabelingError(f"cannot list the images at {url}: {exc}") from None
    if not names:
        raise LabelingError(f"image source not found: {root} (no objects under this prefix)")
    keys = _utf8_keys([k for k in names if _is_visible_image_key(k)])
    del names
    in_classes = [k for k in keys if k.startswith("train/") and "/" in k[len("train/") :]]  # train/DIR/...
    if not any(_WNID.match(k[len("train/") : k.index("/", len("train/"))]) for k in in_classes):
        return ImageList(root, "folder", ImageItems(keys, np.full(len(keys), -1), {}))
    keys = in_classes
    wnids = (k[len("train/") : k.index("/", len("train/"))] for k in keys)
    names_by_index, labels = {}, []
    for wnid, count in ((w, sum(1 for _ in group)) for w, group in itertools.groupby(wnids)):
        if not _WNID.match(wnid):
            raise LabelingError(
                f"{storage.join(root, 'train/' + wnid)}: not a class directory (expected train/<wnid>/)"
            )
        cls = class_by_wnid(wnid)
        names_by_index[cls.index] = cls.prompt
        labels.append(np.full(count, cls.index, np.int32))
    return ImageList(root, "imagenet", ImageItems(keys, np.concatenate(labels), names_by_index))


def _is_visible_image_key(key: str) -> bool:
    """An image name with no hidden part (what the local walk would list)."""
    return _is_image_file_name(key.rpartition("/")[2]) and "/." not in key and not key.startswith(".")


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
        folder = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if folder == "." else f"{folder}/"
        keys += _utf8_keys([prefix + name for name in filenames if _is_image_file_name(name)])
    return keys


def _unreadable(err: OSError) -> None:
    """os.walk would skip a folder it cannot read, and the store would miss its images silently."""
    raise LabelingError(f"{err.filename}: cannot read this image folder ({err.strerror})")


def _utf8_keys(keys: list[str]) -> list[str]:
    """File names that are not valid UTF-8 cannot be stored as keys: skipped with a warning."""
    try:
        "".join(keys).encode("utf-8")
        return keys
    except UnicodeEncodeError:
        return [key for key in keys if _utf8_ok(key)]


def _utf8_ok(key: str) -> bool:
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
        key = line if storage.is_url(line) else _list_key(root, Path(line))
        visible = Path(key).name if Path(key).is_absolute() else key
        if all(not part.startswith(".") for part in Path(visible).parts) and is_image_name(key):
            prompts[key] = tuple(clean_phrases([*prompts.get(key, ()), *split_column(column)]))
    keys = sorted(prompts)
    return ImageList(root, "list", ImageItems(keys, np.full(len(keys), -1), {}, [prompts[k] for k in keys]))


def _list_key(root: Path, path: Path) -> str:
    """Key of a list entry: relative to root when under it, otherwise the absolute path."""
    full = Path(os.path.normpath(root / path))
    try:
        return full.relative_to(root).as_posix()
    except ValueError:
        return full.as_posix()
