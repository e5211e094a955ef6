"""A publication-ready release of a store, without any image pixels (c2f-data publish).

RELEASE/
  data/            the store: arrays (optionally rechunked), records, markers, reports; consolidated metadata
  stats.json       compute_stats() output      stats.png   its dashboard
  README.md        dataset card                croissant.json   Croissant metadata
  SHA256SUMS       every other file's sha256, written last

Built in a temporary sibling folder and renamed into place, so a failed publish leaves nothing.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import dask.array as da
import zarr
from tqdm import tqdm
from zarr.codecs import ZstdCodec

from datasets_spec import consolidate_metadata, schema, storage
from datasets_spec.errors import StoreError
from datasets_spec.reader import Store, open_store
from datasets_spec.validate import RELEASE_CHUNKS, validate

from ._card import render_card
from ._checksums import release_files, write_sums
from ._croissant import croissant
from ._stats_plot import plot_stats
from .dask_shards import mask_arrays
from .stats import compute_stats

DATA, STATS, PLOT, CARD, CROISSANT = "data", "stats.json", "stats.png", "README.md", "croissant.json"
RECHUNK = tuple(RELEASE_CHUNKS)


def publish(store: Store, out, *, rechunk: str | None = None, license_id: str = "other", progress: bool = True) -> dict:
    """Write the release of `store` to `out` (which must not exist); return a summary."""
    out = Path(out)
    if out.exists():
        raise StoreError(f"{out}: already exists")
    if rechunk not in (None, *RECHUNK):
        raise StoreError(f"--rechunk must be one of {', '.join(RECHUNK)}, got {rechunk!r}")
    problems = validate(store.path, pixels=False)
    if problems:
        raise StoreError(
            f"{store.path}: not valid ({len(problems)} problem(s), first: {problems[0]}); run c2f-data validate"
        )
    tmp = out.with_name(f".{out.name}.publishing-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        _copy_store(store.path, tmp / DATA)
        _scrub_local_paths(tmp / DATA)
        if rechunk:
            _rechunk(tmp / DATA, store, rechunk)
        consolidate_metadata(tmp / DATA)  # after --rechunk, and for stores created without it
        copy = open_store(tmp / DATA)
        st = compute_stats(copy, progress=progress)
        (tmp / STATS).write_text(json.dumps(st, indent=1) + "\n")
        plot_stats(st, tmp / PLOT)
        files = {"data": DATA, "stats": STATS, "plot": PLOT, "croissant": CROISSANT}
        name = storage.name(store.path) if storage.is_url(store.path) else store.path.resolve().name
        (tmp / CARD).write_text(render_card(copy, st, license_id, files, name))
        (tmp / CROISSANT).write_text(json.dumps(croissant(copy, tmp, DATA, license_id, name), indent=1) + "\n")
        with tqdm(total=len(release_files(tmp)), desc="checksums", unit="file", disable=not progress) as bar:
            count = write_sums(tmp, bar.update)
        os.replace(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StoreError(f"{out}: cannot write the release ({exc})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"release": str(out), "files": count + 1, "images": st["images"], "rechunk": rechunk}


def _copy_store(src, dest: Path) -> None:
    """Copy what a release holds of the store at `src` (a local path or URL) to the local folder
    `dest` (see `_in_release`)."""
    if not storage.is_url(src):
        shutil.copytree(src, dest, ignore=lambda folder, names: _left_out(Path(src), Path(folder), names))
        return
    for rel in filter(_in_release, storage.list_all(src)):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(storage.read_bytes(src, rel))


def _in_release(rel: str) -> bool:
    """Whether the store's object `rel` goes into a release ("reports/x/" for a folder): not hidden
    files (killed writers' temporaries), nor folders under reports/ (a run's kept worker logs,
    diagnostics that name the labeling machine's paths and are never needed to read the store)."""
    parts = rel.split("/")
    return not any(part.startswith(".") for part in parts) and not (parts[0] == schema.REPORTS_DIR and len(parts) > 2)


def _left_out(root: Path, folder: Path, names: list[str]) -> set[str]:
    """shutil.copytree's `ignore`: which of `names` in `folder` of the store at `root` stay out."""
    prefix = "" if folder == root else f"{folder.relative_to(root).as_posix()}/"
    return {n for n in names if not _in_release(prefix + n + ("/" if (folder / n).is_dir() else ""))}


def _scrub_local_paths(data: Path) -> None:
    """Absolute paths of the publisher's machine (image root, model files, the store itself) in the
    store's provenance and in the job reports become `<local>/NAME`: a release says which model
    (by sha256) and which input list (by hash), not where they sat on someone's disk."""
    root = data / "zarr.json"
    doc = json.loads(root.read_text())
    attrs = doc["attributes"][schema.ATTRS_KEY]
    attrs["provenance"] = _scrubbed(attrs.get("provenance", {}))
    root.write_text(json.dumps(doc, indent=2))
    for report in (data / schema.REPORTS_DIR).glob("*.json"):
        report.write_text(json.dumps(_scrubbed(json.loads(report.read_text())), indent=1, ensure_ascii=False))


def _scrubbed(value):
    if isinstance(value, dict):
        return {key: _scrubbed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrubbed(item) for item in value]
    if isinstance(value, str) and os.path.isabs(value):
        return f"<local>/{Path(value).name}"
    return value


def _rechunk(data: Path, store: Store, how: str) -> None:
    """Rewrite semantic and instance unsharded (one chunk per shard, or per image) and declare it in
    the attributes (c2fmae.release.rechunk), so validate knows which layout to expect."""
    k, s = store.layout.shard_size, store.layout.canvas
    chunks = (k, s, s) if how == "shards" else (1, s, s)
    group = zarr.open_group(data, mode="r+")
    fills = ((schema.SEMANTIC, schema.SEMANTIC_IGNORE), (schema.INSTANCE, schema.INSTANCE_NONE))
    for (name, fill), source in zip(fills, mask_arrays(store)):
        target = group.create_array(
            f"{name}.rechunked",
            shape=source.shape,
            chunks=chunks,
            dtype=source.dtype,
            fill_value=fill,
            compressors=ZstdCodec(level=3),
            dimension_names=("image", "y", "x"),
        )
        da.store(source, target, lock=False)
        shutil.rmtree(data / name)
        os.replace(data / f"{name}.rechunked", data / name)
    group = zarr.open_group(data, mode="r+")
    group.attrs[schema.ATTRS_KEY] = {**group.attrs[schema.ATTRS_KEY], "release": {"rechunk": how}}
