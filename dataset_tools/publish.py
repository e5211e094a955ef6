"""A publication-ready release of a store, without any image pixels (c2f-data publish).

RELEASE/
  data/            --format parquet (default): train-00000-of-000NN.parquet, one row per done image
                   --format zarr: the store (optionally rechunked), records, markers, reports
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
from datasets_spec.imagenet import imagenet_wnids
from datasets_spec.reader import Store, open_store
from datasets_spec.validate import RELEASE_CHUNKS, validate
from plumbing.hub_licenses import check_license

from ._card import Release, render_card
from ._checksums import release_files, write_sums
from ._croissant import croissant
from ._hf_features import row_features, yaml_features
from ._stats_plot import plot_stats
from .dask_shards import mask_arrays
from .parquet_release import TARGET_BYTES, write_parquet
from .stats import compute_stats

DATA, STATS, PLOT, CARD, CROISSANT = "data", "stats.json", "stats.png", "README.md", "croissant.json"
RECHUNK = tuple(RELEASE_CHUNKS)
FORMATS = ("parquet", "zarr")


def publish(
    store: Store,
    out,
    *,
    fmt: str = "parquet",
    rechunk: str | None = None,
    license_id: str = "unknown",
    license_name: str | None = None,
    license_link: str | None = None,
    target_bytes: int = TARGET_BYTES,
    progress: bool = True,
) -> dict:
    """Write the release of `store` to `out` (which must not exist) in format `fmt`; return a summary.
    target_bytes: size at which a Parquet file is closed and the next begun."""
    out = Path(out)
    licence = check_license(license_id, license_name, license_link)
    if out.exists():
        raise StoreError(f"{out}: already exists")
    if fmt not in FORMATS:
        raise StoreError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if rechunk not in (None, *RECHUNK) or (rechunk and fmt != "zarr"):
        raise StoreError(f"--rechunk takes {' or '.join(RECHUNK)} and goes with --format zarr only")
    problems = validate(store.path, pixels=False)
    if problems:
        raise StoreError(
            f"{store.path}: not valid ({len(problems)} problem(s), first: {problems[0]}); run c2f-data validate"
        )
    name = storage.name(store.path) if storage.is_url(store.path) else store.path.resolve().name
    release = Release(fmt, name, licence, DATA, provenance=_scrubbed(store.provenance))
    tmp = out.with_name(f".{out.name}.publishing-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        if fmt == "parquet":
            source = store
            _write_parquet(store, tmp / DATA, release, target_bytes, progress)
        else:
            source = _write_zarr(store, tmp / DATA, rechunk)
        st = compute_stats(source, progress=progress)
        (tmp / STATS).write_text(json.dumps(st, indent=1) + "\n")
        plot_stats(st, tmp / PLOT)
        (tmp / CARD).write_text(render_card(source, st, release))
        (tmp / CROISSANT).write_text(json.dumps(croissant(source, tmp, release), indent=1) + "\n")
        with tqdm(total=len(release_files(tmp)), desc="checksums", unit="file", disable=not progress) as bar:
            count = write_sums(tmp, bar.update)
        os.replace(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StoreError(f"{out}: cannot write the release ({exc})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary = {"release": str(out), "format": fmt, "files": count + 1, "images": st["images"], "rechunk": rechunk}
    return summary | ({"rows": release.rows, "data_files": len(release.data_files)} if fmt == "parquet" else {})


def _write_parquet(store: Store, folder: Path, release: Release, target_bytes: int, progress: bool) -> None:
    """The Parquet files of `store` in `folder`; fills in release's features, rows and file names."""
    labels = store.label_space
    contiguous = sorted(labels) == list(range(len(labels)))  # else no ClassLabel: plain ids
    features = row_features(imagenet_wnids(), [labels[i] for i in sorted(labels)] if contiguous else None)
    with tqdm(total=store.layout.num_shards, desc="parquet", unit="shard", disable=not progress) as bar:
        written = write_parquet(store, folder, features, target_bytes=target_bytes, progress=bar.update)
    release.features = yaml_features(features)
    release.rows, release.data_files = written["rows"], written["files"]
    release.num_bytes, release.file_bytes = written["num_bytes"], written["file_bytes"]


def _write_zarr(store: Store, data: Path, rechunk: str | None) -> Store:
    """The store's copy in `data` (paths scrubbed, optionally rechunked, consolidated), opened."""
    _copy_store(store.path, data)
    _scrub_local_paths(data)
    if rechunk:
        _rechunk(data, store, rechunk)
    consolidate_metadata(data)  # after --rechunk, and for stores created without it
    return open_store(data)


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
