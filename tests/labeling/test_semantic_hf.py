import numpy as np
import pytest
import torch
import torch.nn.functional as F

from datasets_spec.geometry import fit
from labeling.backends import create_backend
from labeling.backends.semantic_hf import class_scores, resample_valid, valid_fractions
from labeling.errors import LabelingError

from .tiny_models import save_oneformer


@pytest.fixture(scope="module")
def images(photos):
    rng = np.random.default_rng(0)
    return [photos["chelsea"], photos["astronaut"], rng.integers(0, 255, (5, 7, 3), dtype=np.uint8)]


def test_segformer_matches_a_plain_bilinear_upsampling_of_its_logits(segformer_dir, images):
    backend = create_backend("semantic", "hf", model=str(segformer_dir), batch_size=2)
    assert backend.label_space() == {i: f"seg{i}" for i in range(5)}
    sizes = [fit(*im.shape[:2], 96) for im in images]
    maps = backend.predict(images, sizes)
    for image, size, got in zip(images, sizes, maps):
        assert got.shape == size and got.dtype == np.int32
        with torch.inference_mode():
            logits = backend.model(**backend.processor(images=[image], return_tensors="pt")).logits
        expected = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)[0].argmax(0)
        assert np.array_equal(got, expected.numpy())


def test_mask2former_gives_canvas_sized_maps_in_its_label_space(mask2former_dir, images):
    backend = create_backend("semantic", "hf", model=str(mask2former_dir), batch_size=3)
    assert backend.label_space() == {i: f"m2f{i}" for i in range(6)}
    sizes = [fit(*im.shape[:2], 80) for im in images]
    maps = backend.predict(images, sizes)
    assert [m.shape for m in maps] == sizes
    assert all(m.dtype == np.int32 and m.min() >= 0 and m.max() < 6 for m in maps)
    again = backend.predict(images, sizes)
    assert all(np.array_equal(a, b) for a, b in zip(maps, again))
    ident = backend.identity()
    assert ident["model_type"] == "mask2former" and len(ident["sha256"]) == 64


def test_oneformer_gets_its_semantic_task_input(tmp_path, images):
    backend = create_backend("semantic", "hf", model=str(save_oneformer(tmp_path)))
    assert backend.model_type == "oneformer" and backend.label_space() == {i: f"one{i}" for i in range(4)}
    sizes = [fit(*im.shape[:2], 64) for im in images]
    maps = backend.predict(images, sizes)
    assert [m.shape for m in maps] == sizes and all(m.min() >= 0 and m.max() < 4 for m in maps)


def test_mask_classification_scores_are_class_probabilities_times_mask_probabilities():
    class Outputs:
        class_queries_logits = torch.tensor([[[10.0, -10.0, -10.0], [-10.0, 10.0, -10.0]]])  # 2 queries, 2 classes
        masks_queries_logits = torch.full((1, 2, 4, 4), -20.0)

    Outputs.masks_queries_logits[0, 0, :, :2] = 20.0  # query 0 (class 0) on the left
    Outputs.masks_queries_logits[0, 1, :, 2:] = 20.0  # query 1 (class 1) on the right
    scores = class_scores(Outputs)
    assert scores.shape == (1, 2, 4, 4)
    assert (scores[0].argmax(0) == torch.tensor([0, 0, 1, 1])).all()


def test_padding_never_reaches_the_canvas():
    scores = torch.zeros(3, 8, 8)
    scores[1, :6, :4] = 1.0  # the image: rows 0..5, cols 0..3 of the padded input, class 1
    scores[2, 6:, :] = 2.0  # padding below and right says class 2
    scores[2, :, 4:] = 2.0
    mask = torch.zeros(1, 32, 32, dtype=torch.bool)
    mask[0, :24, :16] = True  # the processor's pixel_mask at 4× the scores' resolution
    (valid,) = valid_fractions(mask, 1)
    assert valid == (0.75, 0.5)
    out = resample_valid(scores, valid, (60, 40)).argmax(0)
    assert (out == 1).all()


def test_unknown_model_is_a_labeling_error(tmp_path):
    with pytest.raises(LabelingError, match="cannot load"):
        create_backend("semantic", "hf", model=str(tmp_path / "no-such-model"))


def test_a_load_error_without_a_message_is_one_line(tmp_path, monkeypatch):
    import transformers

    def refuse(*args, **kwargs):
        raise OSError()

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", refuse)
    with pytest.raises(LabelingError, match=r"cannot load segmentation model '.*model': OSError$"):
        create_backend("semantic", "hf", model=str(tmp_path / "model"))
