import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from labeling.backends import create_backend
from labeling.backends.grounded import phrase_tokens, prompt_text, select_boxes
from labeling.backends.sam_amg import sam_kind
from labeling.errors import LabelingError


@pytest.fixture(scope="module")
def backend(grounding_dino_dir, sam):
    return create_backend(
        "instance", "grounded", detector=str(grounding_dino_dir), sam_model=sam,
        box_threshold=0.0, text_threshold=0.0, max_boxes=4, extra_prompts=["sky"],
    )


def test_boxes_become_masks_at_original_size_labelled_with_a_prompt(backend, small_photos):
    prompts = [["tabby cat"], ["cup", "Cup"], [], ["cat"]]
    found = backend.predict(small_photos, prompts)
    for image, asked, inst in zip(small_photos, prompts, found):
        assert inst.source == "grounded" and inst.masks.dtype == bool
        assert inst.masks.shape[1:] == image.shape[:2]
        assert 1 <= len(inst) <= 4  # every image has at least the extra prompt
        assert set(inst.prompts) <= {*asked, "sky"}
        assert list(inst.scores) == sorted(inst.scores, reverse=True)


def test_image_encoder_runs_once_per_image_in_one_batch(backend, small_photos):
    batches = []
    hook = backend.sam.image_encoder.register_forward_hook(lambda m, args, out: batches.append(len(args[0])))
    try:
        backend.predict(small_photos, [["cat"]] * len(small_photos))
    finally:
        hook.remove()
    assert batches == [len(small_photos)]


def test_thresholds_and_no_prompts_give_no_instances(grounding_dino_dir, sam, small_photos):
    strict = create_backend("instance", "grounded", detector=str(grounding_dino_dir), sam_model=sam, box_threshold=1.0)
    assert not any(len(i) for i in strict.predict(small_photos, [["cat"]] * len(small_photos)))
    plain = create_backend("instance", "grounded", detector=str(grounding_dino_dir), sam_model=sam, box_threshold=0.0)
    calls = []
    hook = plain.sam.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        found = plain.predict(small_photos[:1], [[]])
    finally:
        hook.remove()
    assert len(found[0]) == 0 and found[0].masks.shape[1:] == small_photos[0].shape[:2] and not calls


def test_masks_equal_sam_predictor_on_the_same_boxes(backend, small_photos):
    image = small_photos[0]
    boxes = torch.tensor([[10.0, 5.0, 80.0, 60.0], [0.0, 0.0, 112.0, 75.0]])
    (ours,) = backend._segment([image], [boxes])
    predictor = SamPredictor(backend.sam)
    predictor.set_image(image)
    with torch.inference_mode():
        ref, _, _ = predictor.predict_torch(
            None, None, boxes=predictor.transform.apply_boxes_torch(boxes, image.shape[:2]), multimask_output=False
        )
    assert np.array_equal(ours, ref[:, 0].numpy())


def test_prompts_map_to_their_own_tokens(grounding_dino_dir, backend):
    text, spans = prompt_text(["Crane bird", "construction crane", "sky"])
    assert text == "crane bird. construction crane. sky."
    tokens = backend.processor.tokenizer([text], return_offsets_mapping=True, return_tensors="pt")
    membership = phrase_tokens(spans, tokens["offset_mapping"][0])
    words = backend.processor.tokenizer.convert_ids_to_tokens(tokens["input_ids"][0])
    assert [[w for w, m in zip(words, row) if m] for row in membership.tolist()] == [
        ["crane", "bird"], ["construction", "crane"], ["sky"],
    ]


def test_selection_picks_the_best_prompt_and_removes_duplicate_boxes():
    membership = torch.tensor([[False, True, True, False, False], [False, False, False, False, True]])
    probs = torch.full((4, 5), 0.01)
    probs[0, 2] = 0.9  # query 0: phrase 0
    probs[1, 4] = 0.8  # query 1: phrase 1, same box as query 0 → removed by NMS
    probs[2, 4] = 0.7  # query 2: phrase 1, elsewhere
    probs[3, 0] = 0.99  # query 3: only a special token is high → no phrase
    boxes = torch.tensor([[0.25, 0.25, 0.2, 0.2], [0.25, 0.26, 0.2, 0.2], [0.75, 0.75, 0.2, 0.2], [0.5, 0.5, 0.1, 0.1]])
    kept, scores, labels = select_boxes(probs, boxes, membership, (100, 200), 0.3, 0.25, 0.7, 10)
    assert labels.tolist() == [0, 1] and scores.tolist() == pytest.approx([0.9, 0.7])
    assert kept[0].tolist() == pytest.approx([30.0, 15.0, 70.0, 35.0])


@pytest.mark.parametrize(
    "name, width, expected",
    [("sam_vit_h_4b8939.pth", None, "vit_h"), ("sam_vit_l_0b3195.pth", None, "vit_l"), ("SAM_VIT_B.PTH", None, "vit_b"),
     ("weights.pth", 1280, "vit_h"), ("weights.pth", 1024, "vit_l"), ("weights.pth", 768, "vit_b"),
     ("sam_vit_b_renamed.pth", 1280, "vit_h")],  # the weights win over the name
)
def test_sam_variant_from_name_or_weights(name, width, expected):
    state = None if width is None else {"image_encoder.patch_embed.proj.weight": torch.zeros(width, 3, 1, 1)}
    assert sam_kind(name, state) == expected


def test_unknown_sam_variant_and_missing_checkpoint_are_labeling_errors(tmp_path, grounding_dino_dir):
    with pytest.raises(LabelingError, match="variant"):
        sam_kind("weights.pth", {"image_encoder.patch_embed.proj.weight": torch.zeros(96, 3, 1, 1)})
    with pytest.raises(LabelingError, match="SAM checkpoint"):
        create_backend("instance", "grounded", detector=str(grounding_dino_dir), sam_checkpoint=str(tmp_path / "x.pth"))
    with pytest.raises(LabelingError, match="exactly one"):
        create_backend("instance", "grounded", detector=str(grounding_dino_dir))
