"""Shared fixtures for the labeling tests: real photos, tiny random-weight models, no network."""

from __future__ import annotations

import os
import shutil
import uuid

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports transformers / huggingface_hub
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import numpy as np
import pytest

from .photo_files import photo, write_photos


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    return {name: photo(name) for name in ("astronaut", "chelsea", "coffee")}


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """Six small real photos in a plain folder (label -1): fast inputs for the model backends."""
    return write_photos(
        tmp_path_factory.mktemp("photos"), ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins"), 0.2, ".jpg"
    )


@pytest.fixture(scope="session")
def small_photos(photos) -> list[np.ndarray]:
    """Two photos at ~1/4 size, a 5×7 and a 3×40 image (3 rows: not to be read as channels-first)."""
    import cv2

    small = [cv2.resize(photos[n], None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA) for n in ("chelsea", "coffee")]
    rng = np.random.default_rng(0)
    return [*small, *(rng.integers(0, 255, shape, dtype=np.uint8) for shape in [(5, 7, 3), (3, 40, 3)])]


@pytest.fixture(scope="session")
def segformer_dir(tmp_path_factory):
    from .tiny_models import save_segformer

    return save_segformer(tmp_path_factory.mktemp("segformer"))


@pytest.fixture(scope="session")
def mask2former_dir(tmp_path_factory):
    from .tiny_models import save_mask2former

    return save_mask2former(tmp_path_factory.mktemp("mask2former"))


@pytest.fixture(scope="session")
def grounding_dino_dir(tmp_path_factory):
    from .tiny_models import save_grounding_dino

    return save_grounding_dino(tmp_path_factory.mktemp("grounding_dino"))


@pytest.fixture(scope="session")
def sam():
    from .tiny_models import tiny_sam

    return tiny_sam()


@pytest.fixture(scope="session")
def sam_hq_dir(tmp_path_factory):
    from .tiny_models import save_sam_hq

    return save_sam_hq(tmp_path_factory.mktemp("sam_hq"))


@pytest.fixture
def hold_events():
    """A fresh control folder of the `hold` test backend (fault_backends.Hold) with `hold` set: a
    job labeling with it holds on its image until the test removes `hold`."""
    from tests.labeling.fault_backends import scratch

    events = scratch(f"hold-{uuid.uuid4().hex}")
    events.mkdir()
    (events / "hold").touch()
    yield events
    shutil.rmtree(events, ignore_errors=True)
