"""The plain transformer block of the encoder and of MAE's decoder."""

import functools

import torch.nn as nn
from timm.models.vision_transformer import Block


def vit_block(dim: int, num_heads: int, mlp_ratio: float) -> Block:
    """timm's pre-norm ViT block with qkv bias and LayerNorm eps 1e-6, as MAE's and timm's
    ``VisionTransformer`` (timm's ``Block`` default norm has changed across versions)."""
    return Block(dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=functools.partial(nn.LayerNorm, eps=1e-6))
