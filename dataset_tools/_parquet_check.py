"""c2f-data verify's check of a Parquet release's data, after its checksums: the files form one
train-NNNNN-of-NNNNN sequence, each is readable row group by row group with the card's columns, the
rows add up to the card's count, image indices rise strictly (no row twice), and every mask is a
square 16-bit greyscale PNG of one canvas size. One store shard of rows in memory at a time."""

from __future__ import annotations

import fnmatch
import struct

import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import DatasetCard

from datasets_spec import storage

from .parquet_release import PATTERN, file_name

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def parquet_names(listed, data: str) -> list[str]:
    """The Parquet files among the release-relative paths `listed`, sorted."""
    return sorted(rel for rel in listed if fnmatch.fnmatch(rel, f"{data}/{PATTERN}"))


def check_parquet(root, data: str, names: list[str], card: str = "README.md") -> list[str]:
    """One line per problem of the Parquet files `names` (release-relative) under `root`."""
    declared = {int(rel.rsplit("-of-", 1)[1].split(".")[0]) for rel in names}
    total = max(declared)
    want = [f"{data}/{file_name(i, total)}" for i in range(total)]
    if len(declared) > 1 or names != want:
        return [f"{rel}: missing (the files say there are {total})" for rel in sorted(set(want) - set(names))] + [
            f"{rel}: not one of the {total} files train-NNNNN-of-{total:05d}" for rel in sorted(set(names) - set(want))
        ]
    try:
        info = DatasetCard(storage.read_bytes(root, card).decode()).data.to_dict()["dataset_info"]
        columns = [f["name"] for f in info["features"]]
        expected_rows = next(s["num_examples"] for s in info["splits"] if s["name"] == "train")
    except (KeyError, TypeError, ValueError, StopIteration) as exc:
        return [f"{card}: no dataset_info with the features and the train split's size ({exc!r})"]
    state = {"rows": 0, "last_index": -1, "canvas": None}
    problems = []
    for rel in names:
        problem = _check_file(root, rel, columns, state)
        if problem:
            problems.append(f"{rel}: {problem}")
    if not problems and state["rows"] != expected_rows:
        problems.append(f"{card}: says {expected_rows} rows, the Parquet files hold {state['rows']}")
    return problems


def _check_file(root, rel: str, columns: list[str], state: dict) -> str | None:
    try:
        remote = storage.is_url(root)  # a release on object storage: one file in memory at a time
        reader = pq.ParquetFile(pa.BufferReader(storage.read_bytes(root, rel)) if remote else str(root / rel))
        if reader.schema_arrow.names != columns:
            return f"columns {reader.schema_arrow.names} are not the card's {columns}"
        for group in range(reader.num_row_groups):
            table = reader.read_row_group(group, columns=["index", "semantic", "instance"])
            problem = _check_rows(table, state)
            if problem:
                return f"row group {group}: {problem}"
            state["rows"] += table.num_rows
    except (OSError, pa.ArrowException) as exc:
        return f"unreadable Parquet ({exc})"
    return None


def _check_rows(table: pa.Table, state: dict) -> str | None:
    indices = table.column("index").to_pylist()
    for i in indices:
        if i <= state["last_index"]:
            return f"image index {i} after {state['last_index']} (rows repeated or out of order)"
        state["last_index"] = i
    for name in ("semantic", "instance"):
        for i, png in zip(indices, table.column(name).combine_chunks().field("bytes").to_pylist()):
            size = _png_canvas(png)
            if size is None or size != (state["canvas"] or size):
                return f"image {i}: {name} is not a square 16-bit greyscale PNG of the canvas size"
            state["canvas"] = size
    return None


def _png_canvas(png: bytes | None) -> int | None:
    """Side S of a square 16-bit greyscale PNG (from its IHDR chunk); None for anything else."""
    if not png or len(png) < 33 or not png.startswith(PNG_SIGNATURE) or png[12:16] != b"IHDR":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", png[16:26])
    return width if width == height and depth == 16 and colour == 0 else None
