"""Tiny stores with known content, built through the public API."""

from __future__ import annotations

import json
import warnings

import numpy as np
import xarray as xr
import zarr

from dataset_tools.synthetic import image_result, synth_image
from datasets_spec import ImageResult, create_store, open_store, schema, storage, write_shard
from datasets_spec.records import encode_rle

LABEL_SPACE = {0: "sky", 1: "ground", 2: "disc", 3: "box", 4: "triangle"}


def make_results(n: int, canvas: int, seed: int = 0, fail_every: int = 5) -> list[ImageResult]:
    """n results with exact masks; every `fail_every`-th image is a failure with a reason."""
    rng = np.random.default_rng(seed)
    results = []
    for i in range(n):
        if fail_every and i % fail_every == fail_every - 1:
            results.append(ImageResult.failed(f"truncated image file: image {i}"))
            continue
        h, w = int(rng.integers(canvas // 2, 2 * canvas)), int(rng.integers(canvas // 2, 2 * canvas))
        _, semantic, instance = synth_image(rng, h, w)
        results.append(image_result(semantic, instance, canvas))
    return results


def make_store(path, n: int = 40, canvas: int = 32, shard_size: int = 8, seed: int = 0, write: bool = True):
    """A store of n images; all shards written unless write=False. Returns (layout, keys, results)."""
    keys = [f"train/n{i % 3:08d}/img_{i:04d}.JPEG" for i in range(n)]
    labels = [i % 3 for i in range(n)]
    layout = create_store(
        path,
        keys,
        labels,
        label_space=LABEL_SPACE,
        canvas=canvas,
        shard_size=shard_size,
        provenance={"backends": {"semantic": "test"}, "input_list_sha256": "0" * 64},
    )
    results = make_results(n, canvas, seed)
    if write:
        for shard in range(layout.num_shards):
            write_shard(path, shard, results[slice(*layout.shard_range(shard))])
    return layout, keys, results


def damage_by_shard(path) -> dict[int, str | None]:
    """{shard: what `Store.shard_damage` finds damaged, None if intact} for every done shard,
    asked as the labeling job asks it (with the marker it has read)."""
    store = open_store(path)
    return {shard: store.shard_damage(shard, store.marker(shard)) for shard in store.done_shards()}


def noise_result(canvas: int, rng: np.random.Generator) -> ImageResult:
    """Incompressible masks (for read-accounting tests): random semantic ids, one instance."""
    semantic = rng.integers(0, 65535, (canvas, canvas)).astype(np.uint16)
    instance = rng.integers(0, 2, (canvas, canvas)).astype(np.uint16)
    mask = np.ones((canvas, canvas), bool)
    record = {
        "id": 1,
        "score": 1.0,
        "box": [0, 0, canvas, canvas],
        "area": canvas * canvas,
        "semantic": 0,
        "source": "noise",
        "prompt": None,
        "rle": encode_rle(mask),
    }
    return ImageResult(semantic, instance, (canvas, canvas), [record])


def store_content(root) -> dict:
    """Everything a store holds (local path or URL) but run reports and its creation time:
    {store-relative path: bytes}, the group document parsed."""
    content = {
        rel: storage.read_bytes(root, rel)
        for rel in storage.list_all(root)
        if not rel.startswith(f"{schema.REPORTS_DIR}/")
    }
    group = json.loads(content.pop("zarr.json"))
    group["attributes"]["c2fmae"]["provenance"].pop("created_at", None)
    return {**content, "zarr.json": group}


def open_as_documented(path) -> xr.Dataset:
    """The local store at `path` opened by xarray as docs/dataset-format.md shows (one shard per
    chunk along `image`), any warning from xarray or zarr an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shard_size = zarr.open_group(path, mode="r").attrs["c2fmae"]["shard_size"]
        return xr.open_zarr(path, chunks={"image": shard_size})
