import numpy as np
import pytest

from labeling.backends import create_backend
from labeling.errors import LabelingError


def amg(sam, **params):
    return create_backend(
        "instance",
        "sam-amg",
        sam_model=sam,
        points_per_side=2,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
        **params,
    )


def test_everything_mode_finds_masks_with_lowered_thresholds(sam, small_photos):
    found = amg(sam).predict(small_photos[:2], [[], []])
    for image, inst in zip(small_photos, found):
        assert len(inst) >= 1 and inst.masks.shape[1:] == image.shape[:2]
        assert inst.prompts == [None] * len(inst) and inst.source == "sam-amg"
        assert list(inst.scores) == sorted(inst.scores, reverse=True)


def test_the_image_encoder_runs_its_attention_through_sdpa(sam):
    from labeling.backends.sam_sdpa import SdpaAttention

    backend = amg(sam)
    assert all(isinstance(block.attn, SdpaAttention) for block in backend.sam.image_encoder.blocks)
    assert backend.generator.predictor.model.image_encoder is backend.sam.image_encoder


def test_default_thresholds_reject_random_weight_masks(sam, small_photos):
    backend = create_backend("instance", "sam-amg", sam_model=sam, points_per_side=2)
    (inst,) = backend.predict(small_photos[:1], [[]])
    assert len(inst) == 0 and inst.masks.shape == (0, *small_photos[0].shape[:2])


def test_parameters_are_recorded_and_max_masks_applies(sam, small_photos):
    backend = amg(sam, max_masks=1, box_nms_thresh=0.9)
    ident = backend.identity()
    assert ident["params"]["points_per_side"] == 2 and ident["params"]["box_nms_thresh"] == 0.9
    assert ident["params"]["max_masks"] == 1
    (inst,) = backend.predict(small_photos[:1], [[]])
    assert len(inst) == 1 and np.isfinite(inst.scores).all()


def test_masks_over_max_masks_are_counted(sam, small_photos):
    grid = dict(sam_model=sam, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
    (every,) = create_backend("instance", "sam-amg", **grid).predict(small_photos[:1], [[]])
    (two,) = create_backend("instance", "sam-amg", max_masks=2, **grid).predict(small_photos[:1], [[]])
    assert len(every) > 2 and every.dropped == {}
    assert len(two) == 2 and two.dropped == {"max_masks": len(every) - 2}


def test_checkpoint_loading_picks_the_variant_and_records_the_hash(tmp_path, monkeypatch):
    import segment_anything
    import torch

    from .tiny_models import tiny_sam

    built = []
    monkeypatch.setitem(
        segment_anything.sam_model_registry, "vit_b", lambda checkpoint=None: built.append(1) or tiny_sam()
    )
    checkpoint = tmp_path / "sam_vit_b_tiny.pth"
    torch.save(tiny_sam().state_dict(), checkpoint)
    backend = create_backend("instance", "sam-amg", sam_checkpoint=str(checkpoint), points_per_side=2)
    ident = backend.identity()
    assert built == [1] and ident["sam_path"] == str(checkpoint) and len(ident["sam_sha256"]) == 64
    assert ident["sam_kind"] == "custom"  # the tiny encoder is none of vit_h / vit_l / vit_b


def test_neither_or_both_of_a_checkpoint_and_a_model_is_one_labeling_error(sam, tmp_path):
    message = "sam-amg needs exactly one of sam_checkpoint and sam_model"
    with pytest.raises(LabelingError, match=message):
        create_backend("instance", "sam-amg")
    with pytest.raises(LabelingError, match=message):
        create_backend("instance", "sam-amg", sam_model=sam, sam_checkpoint=str(tmp_path / "sam_vit_b.pth"))
