"""labeling.fusion against the frozen pre-issue-11 fusion (benchmarks/fusion_reference.py): the same
ImageResult, bit for bit, over many random cases."""

from __future__ import annotations

import ast

import numpy as np
import pytest

from datasets_spec.geometry import fit
from labeling.backends import Instances
from labeling.fusion import fuse

from ..benchmarks.benchmark_modules import ROOT, benchmark_module


def assert_same(ours, ref):
    assert ours.orig_hw == ref.orig_hw
    for name in ("semantic", "instance"):
        a, b = getattr(ours, name), getattr(ref, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert ours.records == ref.records
    for a, b in zip(ours.records, ref.records):  # == treats 1 and 1.0 alike: the JSON would not
        assert [type(a[k]) for k in sorted(a)] == [type(b[k]) for k in sorted(b)]
        assert [type(v) for v in a["box"]] == [type(v) for v in b["box"]]
    assert ours.dropped == ref.dropped


def random_masks(rng: np.random.Generator, height: int, width: int, count: int) -> np.ndarray:
    """bool [count, H, W]: rectangles with holes, copies of earlier masks (equal areas), empty masks,
    full masks, single pixels and noise, so overlaps, ties and specks all happen."""
    masks = np.zeros((count, height, width), bool)
    for k in range(count):
        kind = rng.integers(0, 6)
        if kind == 0 and k:
            masks[k] = masks[rng.integers(0, k)]  # an exact copy: same area, often same score
        elif kind == 1:
            pass  # empty
        elif kind == 2:
            masks[k] = rng.random() < 0.3  # all or nothing
        elif kind == 3:
            masks[k] = rng.random((height, width)) < rng.uniform(0.01, 0.3)  # noise: many specks
        else:
            y0, x0 = rng.integers(0, height), rng.integers(0, width)
            masks[k, y0 : y0 + rng.integers(1, height + 1), x0 : x0 + rng.integers(1, width + 1)] = True
            masks[k] &= rng.random((height, width)) > rng.uniform(0, 0.2)
    return masks


def random_case(rng: np.random.Generator):
    height, width = (int(v) for v in rng.integers(1, 160, size=2))
    canvas = int(rng.choice([16, 64, 256]))
    count = int(rng.integers(1, 12))
    masks = random_masks(rng, height, width, count)
    scores = rng.integers(0, 4, count) / 4  # few values: ties are common
    semantic = None
    if rng.random() < 0.8:
        semantic = rng.integers(-1, int(rng.choice([3, 200, 60000])), fit(height, width, canvas)).astype(np.int32)
    prompts = [None if rng.random() < 0.3 else f"p{k}" for k in range(count)]
    instances = Instances(masks, scores.astype(np.float32), prompts, "test", {"nms": int(rng.integers(0, 3))})
    return semantic, instances, (height, width), canvas, int(rng.integers(0, 9))


@pytest.mark.parametrize("seed", range(6))
def test_fusion_equals_the_reference_on_random_cases(seed):
    reference = benchmark_module("fusion_reference")
    rng = np.random.default_rng(seed)
    for _ in range(50):
        semantic, instances, hw, canvas, min_area = random_case(rng)
        assert_same(
            fuse(semantic, instances, hw, canvas, min_area), reference.fuse(semantic, instances, hw, canvas, min_area)
        )


def test_fusion_equals_the_reference_on_the_benchmark_inputs():
    """ImageNet sizes, 20 SAM-like masks each (benchmarks/fusion_speed.py's inputs), canvas 256."""
    reference, bench = benchmark_module("fusion_reference"), benchmark_module("fusion_speed")
    rng = np.random.default_rng(1)
    for i in range(6):
        semantic, instances = bench.make_case(rng, bench.SIZES[i % 2], 20, 256)
        hw = instances.masks.shape[1:]
        ours, ref = fuse(semantic, instances, hw, 256), reference.fuse(semantic, instances, hw, 256)
        assert len(ref.records) >= 5 and ref.dropped.get("speck_pieces")  # the case exercises the rules
        assert_same(ours, ref)


def test_an_instance_touching_every_border_and_column_wrapping_runs():
    """Runs of the column-major RLE that wrap from one column's bottom to the next column's top."""
    reference = benchmark_module("fusion_reference")
    masks = np.zeros((3, 7, 5), bool)
    masks[0, 4:, 1] = masks[0, :3, 2] = True  # one run across the column break, a speck elsewhere
    masks[0, 6, 4] = True
    masks[1] = True  # everything; loses to 0
    masks[2, 0, 0] = True
    instances = Instances(masks, np.array([0.9, 0.5, 0.5], np.float32), ["a", "b", "c"], "test")
    for min_area in (0, 1, 3):
        assert_same(fuse(None, instances, (7, 5), 8, min_area), reference.fuse(None, instances, (7, 5), 8, min_area))


def test_the_reference_imports_none_of_our_code():
    """Frozen means frozen: a change to datasets_spec or labeling cannot move the reference."""
    tree = ast.parse((ROOT / "benchmarks" / "fusion_reference.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {name.split(".")[0] for name in imported} <= {
        "__future__",
        "collections",
        "dataclasses",
        "cv2",
        "numpy",
        "pycocotools",
    }
