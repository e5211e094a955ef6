"""Tiny random-weight models for the labeling tests, built from configs (no downloads); the
architectures benchmarks/gpu_label.py builds too come from labeling/backends/random_models.py."""

from __future__ import annotations

from pathlib import Path

from labeling.backends import random_models
from labeling.backends.random_models import grounding_dino_config, labels, mask2former_config, word_tokenizer


def save_segformer(directory: Path, num_labels: int = 5) -> Path:
    """A 2-block SegFormer (logits at 1/4 of a 64×64 input) with its image processor."""
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    torch.manual_seed(0)
    config = SegformerConfig(
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[16, 32],
        patch_sizes=[7, 3],
        strides=[4, 2],
        num_attention_heads=[1, 2],
        mlp_ratios=[2, 2],
        decoder_hidden_size=32,
        **labels(num_labels, "seg"),
    )
    SegformerForSemanticSegmentation(config).save_pretrained(directory)
    SegformerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(directory)
    return directory


def save_mask2former(directory: Path, num_labels: int = 6) -> Path:
    """The tiny Mask2Former (random_models: Swin width 16, 8 queries, 1/4-res masks) with its processor."""
    import torch
    from transformers import Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor

    torch.manual_seed(0)
    Mask2FormerForUniversalSegmentation(mask2former_config(num_labels, "m2f")).save_pretrained(directory)
    Mask2FormerImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}).save_pretrained(directory)
    return directory


WORDS = ["crane", "bird", "construction", "cat", "dog", "sky", "tabby", "astronaut", "person", "flag", "cup"]


def save_grounding_dino(directory: Path) -> Path:
    """The tiny Grounding DINO (random_models: Swin + 1-layer BERT, 30 queries) with a processor
    whose BERT tokenizer knows WORDS only (no download)."""
    import torch
    from transformers import GroundingDinoForObjectDetection, GroundingDinoImageProcessor, GroundingDinoProcessor

    tokenizer = word_tokenizer(WORDS)
    torch.manual_seed(0)
    GroundingDinoForObjectDetection(grounding_dino_config(tokenizer.vocab_size)).save_pretrained(directory)
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(directory)
    return directory


def tiny_sam():
    """A random-weight SAM (seed 0): ViT encoder depth 2, width 96, 256² input; prompt/mask dim 64."""
    import torch

    torch.manual_seed(0)
    return random_models.tiny_sam(width=96, dim=64)


def save_sam_hq(directory: Path) -> Path:
    """A random-weight HQ-SAM (transformers SamHQModel): ViT depth 2, width 96, 256² input, prompt/mask
    dim 64, with its processor (longest side 256, padded to 256²)."""
    import torch
    from transformers import SamHQConfig, SamHQModel, SamHQProcessor, SamImageProcessor

    torch.manual_seed(0)
    config = SamHQConfig(
        vision_config=dict(
            hidden_size=96,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=256,
            patch_size=16,
            window_size=4,
            global_attn_indexes=[1],
            output_channels=64,
            mlp_dim=192,
            num_pos_feats=32,
        ),
        prompt_encoder_config=dict(hidden_size=64, image_size=256, patch_size=16, mask_input_channels=4),
        mask_decoder_config=dict(
            hidden_size=64, mlp_dim=128, num_hidden_layers=2, num_attention_heads=2, iou_head_hidden_dim=32, vit_dim=96
        ),
    )
    SamHQModel(config).save_pretrained(directory)
    image_processor = SamImageProcessor(size={"longest_edge": 256}, pad_size={"height": 256, "width": 256})
    SamHQProcessor(image_processor=image_processor).save_pretrained(directory)
    return directory


def save_oneformer(directory: Path, num_labels: int = 4) -> Path:
    """A tiny OneFormer (Swin backbone, 1-layer text encoder) with a processor whose CLIP tokenizer
    (for the "the task is semantic" input) is built from a character vocabulary written here."""
    import json

    import torch
    from transformers import (
        CLIPTokenizer,
        OneFormerConfig,
        OneFormerForUniversalSegmentation,
        OneFormerImageProcessor,
        OneFormerProcessor,
    )

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in "abcdefghijklmnopqrstuvwxyz":
        vocab.update({char: len(vocab), f"{char}</w>": len(vocab) + 1})
    (directory / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = CLIPTokenizer(vocab_file=str(directory / "vocab.json"), merges_file=str(directory / "merges.txt"))
    torch.manual_seed(0)
    config = OneFormerConfig(
        backbone_config=random_models.tiny_swin(out_features=["stage1", "stage2", "stage3", "stage4"]),
        num_queries=8,
        hidden_dim=32,
        conv_dim=32,
        mask_dim=32,
        encoder_feedforward_dim=32,
        encoder_layers=1,
        decoder_layers=2,
        dim_feedforward=32,
        num_attention_heads=2,
        query_dec_layers=1,
        text_encoder_width=32,
        text_encoder_num_layers=1,
        text_encoder_vocab_size=len(vocab),
        text_encoder_context_length=16,
        task_seq_len=16,
        text_encoder_n_ctx=4,
        **labels(num_labels, "one"),
    )
    OneFormerForUniversalSegmentation(config).save_pretrained(directory)
    image_processor = OneFormerImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}, num_text=4)
    OneFormerProcessor(
        image_processor=image_processor, tokenizer=tokenizer, max_seq_length=16, task_seq_length=16
    ).save_pretrained(directory)
    return directory
