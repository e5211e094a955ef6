import numpy as np
import pytest

from datasets_spec import schema
from datasets_spec.geometry import fit, labels_to_canvas
from datasets_spec.records import INSTANCE_FIELDS, decode_rle
from labeling.backends import Instances
from labeling.errors import LabelingError
from labeling.fusion import fuse

H, W, S = 100, 200, 128  # valid canvas size (64, 128): a factor of 1.5625 per axis


def rect(y0, y1, x0, x1, shape=(H, W)):
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def make(masks, scores, prompts=None):
    return Instances(np.stack(masks), np.asarray(scores, np.float32), prompts or [None] * len(masks), "test")


def check_contract(result, canvas=S):
    """Records ⇔ ids with canvas pixels; RLE decodes to the original-size mask with the record's area."""
    ids = set(np.unique(result.instance)) - {0}
    assert {r["id"] for r in result.records} == ids == set(range(1, len(ids) + 1))
    original = np.zeros(result.orig_hw, np.uint16)
    for r in result.records:
        assert set(r) == set(INSTANCE_FIELDS)
        mask = decode_rle(r["rle"])
        assert mask.shape == result.orig_hw and mask.sum() == r["area"] > 0
        assert not (original[mask] > 0).any()  # final masks do not overlap
        original[mask] = r["id"]
        ys, xs = np.nonzero(mask)
        assert r["box"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    assert np.array_equal(labels_to_canvas(original, canvas, 0), result.instance)


def test_majority_vote_gives_each_instance_a_class():
    semantic = np.full(fit(H, W, S), -1, np.int32)
    semantic[:, :40] = 3
    semantic[:, 40:] = 7
    semantic[:32, :] = -1  # no votes in the top half
    result = fuse(semantic, make([rect(0, 100, 0, 80), rect(0, 50, 120, 200)], [0.9, 0.8]), (H, W), S)
    check_contract(result)
    by_id = {r["id"]: r for r in result.records}
    assert by_id[1]["semantic"] == 3  # columns 0..51 of the canvas: 40 of class 3, 12 of class 7
    assert by_id[2]["semantic"] is None  # only "-1" pixels under it


def test_semantic_canvas_maps_no_class_and_padding_to_ignore():
    semantic = np.zeros(fit(H, W, S), np.int32)
    semantic[0, 0] = -1
    result = fuse(semantic, None, (H, W), S)
    assert result.records == [] and (result.instance == schema.INSTANCE_NONE).all()
    assert result.semantic.dtype == np.uint16 and result.semantic.shape == (S, S)
    assert result.semantic[0, 0] == schema.SEMANTIC_IGNORE and result.semantic[0, 1] == 0
    assert (result.semantic[64:] == schema.SEMANTIC_IGNORE).all()


def test_overlap_goes_to_the_higher_score_then_to_the_smaller_mask():
    big, small = rect(0, 60, 0, 120), rect(20, 40, 20, 60)
    result = fuse(None, make([big, small], [0.9, 0.5], ["big", "small"]), (H, W), S)
    check_contract(result)
    assert [(r["prompt"], r["area"]) for r in result.records] == [("big", 60 * 120)]  # small is covered
    tie = fuse(None, make([big, small], [0.5, 0.5], ["big", "small"]), (H, W), S)
    check_contract(tie)
    assert [r["prompt"] for r in tie.records] == ["small", "big"]
    assert tie.records[0]["area"] == 20 * 40 and tie.records[1]["area"] == 60 * 120 - 20 * 40


def test_specks_are_removed_and_tiny_instances_dropped():
    blob = rect(10, 60, 10, 90) | rect(90, 92, 190, 192)  # a 4-pixel speck far away
    crumb = rect(70, 72, 20, 22)  # an instance that is only a speck
    result = fuse(None, make([blob, crumb], [0.9, 0.95]), (H, W), S, min_area=4)
    check_contract(result)
    assert len(result.records) == 1 and result.records[0]["area"] == 50 * 80


def test_instance_that_vanishes_on_the_canvas_is_dropped():
    line = np.zeros((1000, 1000), bool)
    line[500, 100:900] = True  # a one-pixel line: no canvas pixel centre falls on it at 64²
    block = rect(0, 400, 0, 400, (1000, 1000))
    result = fuse(None, make([line, block], [0.99, 0.5]), (1000, 1000), 64, min_area=0)
    check_contract(result, canvas=64)
    assert [r["area"] for r in result.records] == [400 * 400]
    assert result.records[0]["id"] == 1


def test_ids_follow_score_then_area():
    masks = [rect(0, 10, 0, 10), rect(20, 60, 20, 60), rect(70, 90, 100, 160), rect(0, 30, 150, 200)]
    result = fuse(None, make(masks, [0.2, 0.9, 0.9, 0.5], list("abcd")), (H, W), S)
    check_contract(result)
    assert [r["prompt"] for r in result.records] == ["c", "b", "d", "a"]  # c smaller than b


def test_no_instances_gives_an_empty_map_and_no_semantic_map_gives_ignore():
    result = fuse(None, Instances.empty(H, W, "test"), (H, W), S)
    assert result.records == [] and (result.instance == 0).all() and result.instance.dtype == np.uint16
    assert result.semantic.dtype == np.uint16 and (result.semantic == schema.SEMANTIC_IGNORE).all()


def test_wrong_shapes_are_labeling_errors():
    with pytest.raises(LabelingError):
        fuse(np.zeros((10, 10), np.int32), None, (H, W), S)
    with pytest.raises(LabelingError):
        fuse(None, make([rect(0, 5, 0, 5, (50, 50))], [1.0]), (H, W), S)
    with pytest.raises(LabelingError):
        fuse(np.full(fit(H, W, S), 70000, np.int32), None, (H, W), S)


def test_random_instances_always_satisfy_the_contract():
    rng = np.random.default_rng(0)
    for _ in range(20):
        height, width = rng.integers(5, 300, size=2)
        masks = []
        for _ in range(rng.integers(0, 8)):
            y0, x0 = rng.integers(0, height), rng.integers(0, width)
            mask = np.zeros((height, width), bool)
            mask[y0 : y0 + rng.integers(1, height), x0 : x0 + rng.integers(1, width)] = True
            masks.append(mask & (rng.random((height, width)) > 0.1))
        scores = rng.random(len(masks)).round(1)
        instances = make(masks, scores) if masks else Instances.empty(height, width, "test")
        semantic = rng.integers(-1, 5, fit(height, width, 64)).astype(np.int32)
        result = fuse(semantic, instances, (int(height), int(width)), 64, min_area=int(rng.integers(0, 5)))
        check_contract(result, canvas=64)
        assert all(r["semantic"] is None or 0 <= r["semantic"] < 5 for r in result.records)


def test_drops_are_counted_once_each_by_reason():
    """Six input masks with known fates (2 kept, 1 swallowed, 1 empty, 2 all specks), plus the backend's counts."""
    speck_and_body = rect(60, 100, 0, 60) | rect(0, 1, 190, 191)  # kept, with one speck cut off
    masks = [
        rect(0, 50, 0, 100),  # kept (best score)
        rect(10, 40, 10, 90),  # inside the best one: swallowed by the overlap
        np.zeros((H, W), bool),  # SAM gave nothing
        rect(0, 2, 150, 152) | rect(10, 12, 150, 152),  # two 4-pixel specks: nothing left → min_area
        speck_and_body,
        rect(99, 100, 199, 200),  # a single pixel: a speck → min_area
    ]
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    inst = Instances(np.stack(masks), np.asarray(scores, np.float32), [None] * 6, "test", {"nms": 3, "max_boxes": 2})
    result = fuse(None, inst, (H, W), S, min_area=2)  # 2 canvas px → pieces under 5 original px go
    check_contract(result)
    assert len(result.records) == 2
    assert result.dropped == {"empty_mask": 1, "max_boxes": 2, "min_area": 2, "nms": 3, "overlap": 1, "speck_pieces": 4}


def test_an_instance_that_vanishes_on_the_canvas_is_counted():
    """A 1-pixel-wide line between canvas sample points survives specks (min_area 1) but not the canvas."""
    line = np.zeros((H, W), bool)
    line[:, 1] = True  # canvas column j samples original x = floor((j + ½) · 1.5625): 0, 2, 3, …, never 1
    result = fuse(None, make([rect(0, 100, 100, 200), line], [0.9, 0.8]), (H, W), S, min_area=1)
    check_contract(result)
    assert len(result.records) == 1 and result.dropped == {"canvas": 1}


def test_nothing_dropped_means_an_empty_count_and_backend_counts_pass_through():
    result = fuse(None, make([rect(0, 50, 0, 100)], [0.9]), (H, W), S)
    assert result.dropped == {}
    empty = Instances.empty(H, W, "test", {"max_boxes": 5})
    assert fuse(None, empty, (H, W), S).dropped == {"max_boxes": 5}
