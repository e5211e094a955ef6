import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from labeling.backends import create_backend
from labeling.backends.grounded import phrase_tokens, prompt_text, select_boxes, token_phrase
from labeling.backends.sam_loader import sam_kind
from labeling.errors import LabelingError

LOOSE = dict(box_threshold=0.0, text_threshold=0.0, max_boxes=4, extra_prompts=["sky"])


@pytest.fixture(scope="module")
def backend(grounding_dino_dir, sam):
    """Plain SAM (segment-anything), injected."""
    return create_backend(
        "instance", "grounded", detector=str(grounding_dino_dir), sam_model=sam, sam_variant="sam", **LOOSE
    )


@pytest.fixture(scope="module")
def hq_backend(grounding_dino_dir, sam_hq_dir):
    """HQ-SAM (transformers), loaded from a model folder: the default variant."""
    return create_backend(
        "instance", "grounded", detector=str(grounding_dino_dir), sam_checkpoint=str(sam_hq_dir), **LOOSE
    )


@pytest.fixture(params=["sam", "hq"])
def either(request, backend, hq_backend):
    return {"sam": backend, "hq": hq_backend}[request.param]


def test_boxes_become_masks_at_original_size_labelled_with_a_phrase(either, small_photos):
    prompts = [["tabby cat"], ["cup", "Cup"], [], ["cat"]]
    found = either.predict(small_photos, prompts)
    for image, asked, inst in zip(small_photos, prompts, found):
        assert inst.source == "grounded" and inst.masks.dtype == bool
        assert inst.masks.shape[1:] == image.shape[:2]
        assert 1 <= len(inst) <= 4  # every image has at least the extra prompt
        words = {w for p in [*asked, "sky"] for w in p.lower().split()}
        assert all(set(p.split()) <= words for p in inst.prompts)  # text_threshold 0: every word selected
        assert list(inst.scores) == sorted(inst.scores, reverse=True)


def test_image_encoder_runs_once_per_image_in_one_batch(either, small_photos):
    batches = []
    hook = either.segmenter.encoder.register_forward_hook(lambda m, args, out: batches.append(len(args[0])))
    try:
        either.predict(small_photos, [["cat"]] * len(small_photos))
    finally:
        hook.remove()
    assert batches == [len(small_photos)]


def test_thresholds_and_no_prompts_give_no_instances(grounding_dino_dir, sam, small_photos):
    strict = create_backend(
        "instance", "grounded", detector=str(grounding_dino_dir), sam_model=sam, sam_variant="sam", box_threshold=1.0
    )
    assert not any(len(i) for i in strict.predict(small_photos, [["cat"]] * len(small_photos)))
    plain = create_backend(
        "instance", "grounded", detector=str(grounding_dino_dir), sam_model=sam, sam_variant="sam", box_threshold=0.0
    )
    calls = []
    hook = plain.segmenter.encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        found = plain.predict(small_photos[:1], [[]])
    finally:
        hook.remove()
    assert len(found[0]) == 0 and found[0].masks.shape[1:] == small_photos[0].shape[:2] and not calls


def test_box_selection_drops_are_counted(grounding_dino_dir, sam, small_photos):
    few = create_backend(
        "instance",
        "grounded",
        detector=str(grounding_dino_dir),
        sam_model=sam,
        sam_variant="sam",
        box_threshold=0.0,
        nms_iou=1.0,
        max_boxes=2,
    )
    (inst,) = few.predict(small_photos[:1], [["cat"]])
    queries = few.detector.config.num_queries  # threshold 0, no NMS: every query but 2 is over max_boxes
    assert len(inst) == 2 and inst.dropped == {"max_boxes": queries - 2}


def test_masks_equal_sam_predictor_on_the_same_boxes(backend, small_photos):
    """Three images of different sizes and box counts in one segment() call (one encoder pass, one
    batched box decode) against SamPredictor image by image."""
    images = [small_photos[0], small_photos[1], small_photos[3]]
    boxes = [
        torch.tensor([[10.0, 5.0, 80.0, 60.0], [0.0, 0.0, 112.0, 75.0]]),
        torch.tensor([[5.0, 5.0, 60.0, 40.0], [20.0, 10.0, 30.0, 50.0], [0.0, 0.0, 5.0, 5.0]]),
        torch.tensor([[0.0, 0.0, 40.0, 3.0]]),
    ]
    ours = backend.segmenter.segment(images, boxes)
    predictor = SamPredictor(backend.segmenter.sam)
    for image, box, mine in zip(images, boxes, ours):
        predictor.set_image(image)
        with torch.inference_mode():
            ref, _, _ = predictor.predict_torch(
                None, None, boxes=predictor.transform.apply_boxes_torch(box, image.shape[:2]), multimask_output=False
            )
        assert mine.shape == (len(box), *image.shape[:2])
        assert np.array_equal(mine, ref[:, 0].numpy())
        assert 0 < mine.sum() < mine.size


def test_box_decoding_of_a_batch_equals_decoding_image_by_image(backend):
    """decode_boxes (all images' boxes in one call) against segment-anything's mask decoder called
    once per image, on the same embeddings: the same low-resolution logits."""
    sam = backend.segmenter.sam
    torch.manual_seed(0)
    embeddings = torch.randn(3, 64, 16, 16)
    counts = [2, 4, 1]
    boxes = torch.rand(sum(counts), 2, 2).mul(256).sort(dim=1).values.reshape(-1, 4)  # xyxy, x0 ≤ x1, y0 ≤ y1
    image_of_box = torch.repeat_interleave(torch.arange(3), torch.tensor(counts))
    with torch.inference_mode():
        ours = backend.segmenter.decode_boxes(embeddings, image_of_box, boxes)
        refs = []
        for i, part in enumerate(boxes.split(counts)):
            sparse, dense = sam.prompt_encoder(points=None, boxes=part, masks=None)
            refs.append(
                sam.mask_decoder(
                    image_embeddings=embeddings[i : i + 1],
                    image_pe=sam.prompt_encoder.get_dense_pe(),
                    sparse_prompt_embeddings=sparse,
                    dense_prompt_embeddings=dense,
                    multimask_output=False,
                )[0]
            )
    assert ours.shape == (sum(counts), 1, 64, 64)
    torch.testing.assert_close(ours, torch.cat(refs), rtol=1e-5, atol=1e-5)


def test_one_prompt_encoder_and_one_mask_decoder_call_per_batch(either, small_photos):
    segmenter, calls = either.segmenter, []
    if segmenter.variant == "sam":
        modules = [("prompt", segmenter.sam.prompt_encoder), ("decoder", segmenter.sam.mask_decoder.transformer)]
    else:
        modules = [("prompt", segmenter.model.prompt_encoder), ("decoder", segmenter.model.mask_decoder)]
    hooks = [
        module.register_forward_hook(lambda m, args, out, name=name: calls.append(name)) for name, module in modules
    ]
    try:
        found = either.predict(small_photos, [["cat"]] * len(small_photos))
    finally:
        for hook in hooks:
            hook.remove()
    assert sum(len(f) for f in found) > len(small_photos)  # several boxes, several images
    assert calls == ["prompt", "decoder"]


@pytest.mark.parametrize("hq_token_only", [False, True])
def test_hq_masks_equal_the_models_own_forward_on_the_same_boxes(hq_backend, small_photos, hq_token_only):
    """Our batched path (one encoder pass over all images, all boxes of an image in one decoder call)
    against transformers' documented route, image by image: processor → SamHQModel → post_process_masks."""
    segmenter = hq_backend.segmenter
    segmenter.hq_token_only = hq_token_only
    images = [small_photos[0], small_photos[1], small_photos[3]]  # 3 sizes, one only 3 rows high
    boxes = [
        torch.tensor([[10.0, 5.0, 80.0, 60.0], [0.0, 0.0, 112.0, 75.0], [30.0, 20.0, 40.0, 30.0]]),
        torch.tensor([[5.0, 5.0, 60.0, 40.0]]),
        torch.tensor([[0.0, 0.0, 40.0, 3.0], [8.0, 1.0, 20.0, 2.0]]),
    ]
    try:
        with torch.inference_mode():
            ours = segmenter.segment(images, boxes)
            for image, box, mine in zip(images, boxes, ours):
                inputs = segmenter.processor(
                    images=[image], input_boxes=[box.tolist()], return_tensors="pt", input_data_format="channels_last"
                )
                out = segmenter.model(**inputs, multimask_output=False, hq_token_only=hq_token_only)
                (ref,) = segmenter.processor.post_process_masks(
                    out.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"]
                )
                assert mine.shape == (len(box), *image.shape[:2])
                assert np.array_equal(mine, ref[:, 0].numpy())
                assert 0 < mine.sum() < mine.size  # neither all-off nor all-on: the comparison means something
    finally:
        segmenter.hq_token_only = False


def test_prompts_map_to_their_own_tokens(backend):
    text, spans = prompt_text(["Crane bird", "construction crane", "sky"])
    assert text == "crane bird. construction crane. sky."
    tokens = backend.processor.tokenizer([text], return_offsets_mapping=True, return_tensors="pt")
    membership = phrase_tokens(spans, tokens["offset_mapping"][0])
    words = backend.processor.tokenizer.convert_ids_to_tokens(tokens["input_ids"][0])
    assert [[w for w, m in zip(words, row) if m] for row in membership.tolist()] == [
        ["crane", "bird"],
        ["construction", "crane"],
        ["sky"],
    ]


# "crane bird. sky." as BERT tokenizes it: [CLS] crane bird . sky . [SEP] (character offsets)
TEXT, SPANS = prompt_text(["crane bird", "sky"])
OFFSETS = torch.tensor([[0, 0], [0, 5], [6, 10], [10, 11], [12, 15], [15, 16], [0, 0]])


def _probs(rows: dict[int, dict[int, float]], queries: int = 6) -> torch.Tensor:
    probs = torch.full((queries, len(OFFSETS)), 0.01)
    for q, tokens in rows.items():
        for t, p in tokens.items():
            probs[q, t] = p
    return probs


def test_selection_keeps_boxes_by_max_token_and_reads_phrases_from_text_threshold():
    probs = _probs(
        {
            0: {1: 0.9, 2: 0.3},  # crane 0.9, bird 0.3 → "crane bird"
            1: {4: 0.8},  # sky, on query 0's box → removed by NMS
            2: {4: 0.7, 1: 0.26},  # sky 0.7 + crane just over text_threshold → "crane sky" (text order)
            3: {0: 0.99, 6: 0.99, 3: 0.99},  # only [CLS], [SEP] and "." are high → no box
            4: {2: 0.3},  # bird 0.3 < box_threshold → no box
            5: {1: 0.5},  # crane 0.5, a third place → over max_boxes
        }
    )
    boxes = torch.tensor(
        [
            [0.25, 0.25, 0.2, 0.2],
            [0.25, 0.26, 0.2, 0.2],
            [0.75, 0.75, 0.2, 0.2],
            [0.5, 0.5, 0.1, 0.1],
            [0.1, 0.9, 0.1, 0.1],
            [0.9, 0.1, 0.1, 0.1],
        ]
    )
    got = select_boxes(probs, boxes, TEXT, OFFSETS, SPANS, (100, 200), 0.35, 0.25, 0.7, 2)
    assert got.phrases == ["crane bird", "crane sky"] and got.scores.tolist() == pytest.approx([0.9, 0.7])
    assert got.boxes[0].tolist() == pytest.approx([30.0, 15.0, 70.0, 35.0])
    assert got.dropped == {"nms": 1, "max_boxes": 1}


def test_a_box_whose_tokens_are_all_under_text_threshold_is_kept_without_a_phrase():
    probs = _probs({0: {1: 0.5, 2: 0.4}}, queries=1)
    got = select_boxes(probs, torch.tensor([[0.5, 0.5, 0.2, 0.2]]), TEXT, OFFSETS, SPANS, (10, 10), 0.35, 0.6, 0.7, 5)
    assert got.phrases == [None] and got.scores.tolist() == pytest.approx([0.5]) and got.dropped == {}


def test_word_pieces_join_into_one_word():
    offsets = torch.tensor([[0, 0], [0, 4], [4, 7], [8, 11], [0, 0]])  # blue ##jay owl
    assert token_phrase("bluejay owl", offsets, torch.tensor([False, True, True, True, False])) == "bluejay owl"
    assert token_phrase("bluejay owl", offsets, torch.tensor([False, False, True, True, False])) == "jay owl"


def test_identity_records_the_sam_variant_and_its_weights(backend, hq_backend, sam_hq_dir):
    plain, hq = backend.identity(), hq_backend.identity()
    assert plain["sam_variant"] == "sam" and plain["sam_weights"] == "injected"
    assert hq["sam_variant"] == "hq" and hq["sam_path"] == str(sam_hq_dir) and len(hq["sam_sha256"]) == 64
    assert hq["sam_hq_token_only"] is False and hq["sam_img_size"] == 256


@pytest.mark.parametrize(
    "name, width, expected",
    [
        ("sam_vit_h_4b8939.pth", None, "vit_h"),
        ("sam_vit_l_0b3195.pth", None, "vit_l"),
        ("SAM_VIT_B.PTH", None, "vit_b"),
        ("weights.pth", 1280, "vit_h"),
        ("weights.pth", 1024, "vit_l"),
        ("weights.pth", 768, "vit_b"),
        ("sam_vit_b_renamed.pth", 1280, "vit_h"),
    ],  # the weights win over the name
)
def test_sam_variant_from_name_or_weights(name, width, expected):
    state = None if width is None else {"image_encoder.patch_embed.proj.weight": torch.zeros(width, 3, 1, 1)}
    assert sam_kind(name, state) == expected


def test_bad_sam_settings_are_one_line_labeling_errors(tmp_path, grounding_dino_dir, sam):
    detector = str(grounding_dino_dir)
    with pytest.raises(LabelingError, match="variant"):
        sam_kind("weights.pth", {"image_encoder.patch_embed.proj.weight": torch.zeros(96, 3, 1, 1)})
    with pytest.raises(LabelingError, match="SAM checkpoint"):
        create_backend(
            "instance", "grounded", detector=detector, sam_variant="sam", sam_checkpoint=str(tmp_path / "x.pth")
        )
    with pytest.raises(LabelingError, match="exactly one"):
        create_backend("instance", "grounded", detector=detector)
    with pytest.raises(LabelingError, match="grounded needs exactly one of sam_checkpoint and sam_model"):
        create_backend("instance", "grounded", detector=detector, sam_model=sam, sam_checkpoint=str(tmp_path / "x.pth"))
    with pytest.raises(LabelingError, match="sam_variant must be one of hq, sam"):
        create_backend("instance", "grounded", detector=detector, sam_model=sam, sam_variant="mobile")
    with pytest.raises(LabelingError, match="needs sam_variant: sam"):
        create_backend("instance", "grounded", detector=detector, sam_model=sam)  # hq is the default
    plain = tmp_path / "sam_vit_b.pth"
    torch.save(sam.state_dict(), plain)
    with pytest.raises(LabelingError, match="is a file; HQ-SAM loads a transformers"):
        create_backend("instance", "grounded", detector=detector, sam_checkpoint=str(plain))
    syscv = tmp_path / "sam_hq_vit_b.pth"  # SysCV's own HQ layout: refused with the way to load it
    torch.save({**sam.state_dict(), "mask_decoder.hf_token.weight": torch.zeros(1, 64)}, syscv)
    with pytest.raises(LabelingError, match="HQ-SAM checkpoint in SysCV's layout: set sam_variant: hq"):
        create_backend("instance", "grounded", detector=detector, sam_variant="sam", sam_checkpoint=str(syscv))


def test_paper_config_asks_for_hq_sam_with_parameters_grounded_accepts():
    import inspect

    from labeling.backends.grounded import GroundedSAM
    from labeling.config import load_config

    cfg = load_config("label_paper")
    assert cfg.instance.name == "grounded" and cfg.instance.params["sam_variant"] == "hq"
    inspect.signature(GroundedSAM).bind(**cfg.instance.params)


def test_a_vocabulary_longer_than_the_detector_text_reaches_it_whole_in_groups(
    grounding_dino_dir, sam, small_photos, monkeypatch
):
    """label_broad's 80 COCO phrases + a class name against the tiny detector's 32-token text:
    every phrase is in some detector pass, no pass is truncated, and the passes' boxes are pooled."""
    from labeling.backends import grounded
    from labeling.config import load_config

    vocabulary = load_config("label_broad").instance.params["extra_prompts"]
    assert len(vocabulary) == 80
    backend = create_backend(
        "instance",
        "grounded",
        detector=str(grounding_dino_dir),
        sam_model=sam,
        sam_variant="sam",
        box_threshold=0.0,
        text_threshold=0.0,
        nms_iou=1.0,
        max_boxes=10_000,
        extra_prompts=vocabulary,
    )
    texts, shapes = [], []
    monkeypatch.setattr(grounded, "prompt_text", lambda ps: texts.append(ps) or prompt_text(ps))
    hook = backend.detector.register_forward_pre_hook(
        lambda m, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    try:
        found = backend.predict(small_photos[:2], [["tabby cat"], []])
    finally:
        hook.remove()
    sizes = [len(group) for group in texts]
    first = next(k for k in range(len(sizes)) if sum(sizes[: k + 1]) == 81)  # the first image's last group
    assert [p for group in texts for p in group] == ["tabby cat", *vocabulary, *vocabulary]
    (pairs, length), *more = shapes  # one detector call for every (image, group) pair
    assert first >= 4 and pairs == len(texts) and not more and length <= backend.detector.config.max_text_len
    queries = backend.detector.config.num_queries  # threshold 0, no NMS: every query of every pass is kept
    assert [len(inst) for inst in found] == [queries * (first + 1), queries * (len(texts) - first - 1)]
