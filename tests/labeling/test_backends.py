"""The registry, and one contract that every registered backend meets (tiny random weights)."""

import inspect
import json

import numpy as np
import pytest

from datasets_spec import schema
from datasets_spec.geometry import fit, labels_to_canvas
from datasets_spec.records import decode_rle
from labeling import backends
from labeling.backends import KINDS, backend_names, classic, create_backend, register_backend
from labeling.backends.base import InstanceBackend, Instances, SemanticBackend
from labeling.config import BackendConfig, LabelConfig
from labeling.errors import LabelingError
from labeling.fusion import fuse
from labeling.worker import ShardLabeler

CANVAS = 64


def tiny_params(kind, name, request) -> dict:
    """Parameters that build each registered backend offline, in a second or two."""
    fixture = request.getfixturevalue
    return {
        ("semantic", "classic"): lambda: {},
        ("semantic", "hf"): lambda: {"model": str(fixture("segformer_dir"))},
        ("instance", "classic"): lambda: {},
        ("instance", "grounded"): lambda: {
            "detector": str(fixture("grounding_dino_dir")),
            "sam_model": fixture("sam"),
            "sam_variant": "sam",
            "box_threshold": 0.0,
            "max_boxes": 3,
        },
        ("instance", "sam-amg"): lambda: {
            "sam_model": fixture("sam"),
            "points_per_side": 2,
            "pred_iou_thresh": 0.0,
            "stability_score_thresh": 0.0,
        },
    }[(kind, name)]()


def test_registry_lists_the_builtin_backends():
    assert backend_names("semantic") == ["classic", "hf"]
    assert backend_names("instance") == ["classic", "grounded", "sam-amg"]


def test_unknown_names_and_bad_parameters_are_labeling_errors():
    with pytest.raises(LabelingError, match="valid names: classic, grounded, sam-amg"):
        create_backend("instance", "mask-rcnn")
    with pytest.raises(LabelingError, match="valid kinds"):
        create_backend("panoptic", "classic")
    with pytest.raises(LabelingError, match="bad parameters.*colours"):
        create_backend("semantic", "classic", colours=3)


def test_a_registered_backend_is_built_by_name_and_does_not_leak(monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))  # how tests register backends

        @register_backend("semantic", "everything-is-sky")
        class Sky(SemanticBackend):
            def label_space(self):
                return {0: "sky"}

            def identity(self):
                return {"name": self.name}

            def predict(self, images, sizes):
                return [np.zeros(size, np.int32) for size in sizes]

        assert "everything-is-sky" in backend_names("semantic")
        assert create_backend("semantic", "everything-is-sky").identity() == {"name": "everything-is-sky"}
    assert "everything-is-sky" not in backend_names("semantic")  # gone for the tests that follow


def test_a_gpu_worker_gives_its_device_to_the_backends_that_take_one(monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))
        register_backend("semantic", "cpu-only")(type("CpuOnly", (classic.ClassicSemantic,), {}))

        @register_backend("instance", "on-device")
        class OnDevice(InstanceBackend):
            def __init__(self, device: str = "cpu"):
                self.device = device

            def identity(self):
                return {"name": self.name, "device": self.device}

            def predict(self, images, prompts):
                return [Instances.empty(*im.shape[:2], self.name) for im in images]

        cfg = LabelConfig(semantic=BackendConfig("cpu-only"), instance=BackendConfig("on-device"))
        labeler = ShardLabeler(cfg, device="cuda:1")  # the CPU-only backend gets no device
        assert isinstance(labeler.semantic, classic.ClassicSemantic) and labeler.instance.device == "cuda:1"
        chosen = LabelConfig(semantic=BackendConfig("classic"), instance=BackendConfig("on-device", {"device": "cpu"}))
        assert ShardLabeler(chosen, device="cuda:1").instance.device == "cpu"  # the parameters' own wins


def _uncached(backend):
    """`backend` with the classic module cache emptied, so a second run computes its answers again."""
    classic._CACHE.clear()
    return backend


BUILTIN = [(kind, name) for kind in KINDS for name in backend_names(kind)]  # a new one needs tiny_params


@pytest.mark.parametrize("kind, name", BUILTIN, ids=[f"{k}-{n}" for k, n in BUILTIN])
def test_takes_device_says_whether_the_constructor_has_a_device_parameter(kind, name):
    cls = backends.backend_class(kind, name)
    assert cls.takes_device == ("device" in inspect.signature(cls).parameters)


@pytest.mark.parametrize("kind, name", BUILTIN, ids=[f"{k}-{n}" for k, n in BUILTIN])
def test_every_backend_meets_the_contract(kind, name, request, small_photos):
    backend = create_backend(kind, name, **tiny_params(kind, name, request))
    identity = backend.identity()
    assert identity["name"] == name and json.loads(json.dumps(identity)) == identity
    images = small_photos
    shapes = [im.shape[:2] for im in images]
    if kind == "semantic":
        space = backend.label_space()
        assert space and all(isinstance(i, int) and 0 <= i < schema.SEMANTIC_IGNORE for i in space)
        sizes = [fit(h, w, CANVAS) for h, w in shapes]
        first, second = backend.predict(images, sizes), _uncached(backend).predict(images, sizes)
        for size, got, again in zip(sizes, first, second):
            assert got.shape == size and got.dtype == np.int32 and np.array_equal(got, again)
            assert set(np.unique(got)) <= set(space) | {-1}
        results = [fuse(s, None, hw, CANVAS) for s, hw in zip(first, shapes)]
        assert all(r.semantic.shape == (CANVAS, CANVAS) and r.semantic.dtype == np.uint16 for r in results)
        return
    prompts = [["cat"], ["cup"], [], ["sky"]]
    first, second = backend.predict(images, prompts), _uncached(backend).predict(images, prompts)
    for hw, got, again in zip(shapes, first, second):
        assert got.source == name and got.masks.shape[1:] == hw and got.masks.dtype == bool
        assert got.scores.dtype == np.float32 and len(got.prompts) == len(got)
        assert np.array_equal(got.masks, again.masks) and np.array_equal(got.scores, again.scores)
        assert got.dropped == again.dropped and all(isinstance(n, int) and n > 0 for n in got.dropped.values())
        result = fuse(None, got, hw, CANVAS, min_area=1)
        ids = set(np.unique(result.instance)) - {schema.INSTANCE_NONE}
        assert {r["id"] for r in result.records} == ids
        stitched = np.zeros(hw, np.uint16)
        for record in result.records:
            stitched[decode_rle(record["rle"])] = record["id"]
        assert np.array_equal(labels_to_canvas(stitched, CANVAS, 0), result.instance)
