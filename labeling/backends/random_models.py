"""Random-weight models of the backends' architectures, built from configs (nothing is downloaded):
the ones the labeling tests and benchmarks/gpu_label.py both build, each at the sizes they need.
Never used to label; here (not under tests/) so the benchmark needs no test code, and Ray workers
can import it.

tiny: a few MB and milliseconds per image on the CPU (tests, `--tiny` smoke runs);
full: the published architecture (Mask2Former Swin-L, Grounding DINO-T), for GPU timings.
"""

from __future__ import annotations

from functools import partial


def labels(count: int, prefix: str) -> dict:
    """id2label / label2id config entries for `count` classes named PREFIX0, PREFIX1, ..."""
    id2label = {i: f"{prefix}{i}" for i in range(count)}
    return {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}


def tiny_swin(**outputs):
    """The tiny Swin backbone of the random models: 64² input, patch 4, width 16, one block of one
    head per stage, windows of 4; `outputs` says which stages it returns (out_features / out_indices)."""
    from transformers import SwinConfig

    return SwinConfig(
        image_size=64, patch_size=4, embed_dim=16, depths=[1] * 4, num_heads=[1] * 4, window_size=4, **outputs
    )


def mask2former_config(num_labels: int, prefix: str, tiny: bool = True):
    """Mask2Former on a Swin backbone (never a pretrained one): tiny (8 queries, width 32, masks at
    1/4 of a 64² input) or full (Swin-L at 384², Mask2Former's default heads)."""
    from transformers import Mask2FormerConfig, SwinConfig

    stages = ["stage1", "stage2", "stage3", "stage4"]
    if not tiny:
        swin = SwinConfig(
            image_size=384,
            patch_size=4,
            embed_dim=192,
            depths=[2, 2, 18, 2],
            num_heads=[6, 12, 24, 48],
            window_size=12,
            out_features=stages,
        )
        return Mask2FormerConfig(backbone_config=swin, use_pretrained_backbone=False, **labels(num_labels, prefix))
    return Mask2FormerConfig(
        backbone_config=tiny_swin(out_features=stages),
        use_pretrained_backbone=False,
        num_queries=8,
        hidden_dim=32,
        mask_feature_size=32,
        feature_size=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_feedforward_dim=32,
        dim_feedforward=32,
        num_attention_heads=2,
        **labels(num_labels, prefix),
    )


def word_tokenizer(words: list[str]):
    """A BERT tokenizer whose vocabulary is BERT's special tokens, "." and "-", then `words` (any
    other word is [UNK]): Grounding DINO's text input without a download."""
    from transformers import BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "-", *words]
    return BertTokenizer(vocab={token: i for i, token in enumerate(vocab)})


def grounding_dino_config(vocab_size: int, tiny: bool = True):
    """Grounding DINO: tiny (Swin width 16, a 1-layer BERT over `vocab_size` tokens, 30 queries,
    width 32) or full (DINO-T: Swin-T, BERT-base with its own 30522-token table, 900 queries)."""
    from transformers import BertConfig, GroundingDinoConfig

    if not tiny:
        return GroundingDinoConfig()
    return GroundingDinoConfig(
        backbone_config=tiny_swin(out_indices=[2, 3, 4]),
        text_config=BertConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        ),
        num_queries=30,
        encoder_layers=1,
        decoder_layers=2,
        d_model=32,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_n_points=2,
        decoder_n_points=2,
        max_text_len=32,
    )


def tiny_sam(width: int, dim: int):
    """A segment-anything `Sam` in eval mode: ViT encoder of depth 2 and `width` at 256², patch 16
    (windowed block 0 on 4 × 4 windows, global block 1), neck, prompt encoder and mask decoder of
    `dim` channels. (The full vit_h comes from segment_anything's own registry.)"""
    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    encoder = ImageEncoderViT(
        img_size=256,
        patch_size=16,
        embed_dim=width,
        depth=2,
        num_heads=2,
        mlp_ratio=2,
        out_chans=dim,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=(1,),
        window_size=4,
    )
    prompts = PromptEncoder(embed_dim=dim, image_embedding_size=(16, 16), input_image_size=(256, 256), mask_in_chans=4)
    decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=2 * dim, num_heads=2),
        transformer_dim=dim,
        iou_head_depth=2,
        iou_head_hidden_dim=32,
    )
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]  # segment-anything's own
    return Sam(encoder, prompts, decoder, pixel_mean=mean, pixel_std=std).eval()
