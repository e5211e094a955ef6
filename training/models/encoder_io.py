"""What the engine reads off the model besides its forward: the no-weight-decay names and the encoder
export that loads with ``strict=True`` into ``build_timm_vit(timm_spec()["model"],
{**timm_spec()["kwargs"], "num_classes": 0})``."""

import torch
import torch.nn as nn

# top-level parameter names shared with timm's VisionTransformer (class token, no registers)
ENCODER_PREFIXES = ("cls_token", "pos_embed", "patch_embed.", "blocks.", "norm.")


class EncoderExportMixin:
    """For ``nn.Module`` models with a ``cfg: ModelConfig`` and timm-named encoder parameters."""

    def no_weight_decay(self: nn.Module) -> set[str]:
        """Names of parameters kept out of weight decay: norms, biases (every 1-d parameter),
        position embeddings, learned tokens and class embeddings."""
        embeddings = {f"{name}.weight" for name, m in self.named_modules() if isinstance(m, nn.Embedding)}
        return {
            name
            for name, p in self.named_parameters()
            if p.ndim <= 1 or name.endswith("_token") or "pos_embed" in name or name in embeddings
        }

    def encoder_state_dict(self: nn.Module) -> dict[str, torch.Tensor]:
        """The RGB encoder's weights under timm's names (detached CPU copies)."""
        return {k: v.detach().cpu().clone() for k, v in self.state_dict().items() if k.startswith(ENCODER_PREFIXES)}

    def timm_spec(self: nn.Module) -> dict:
        """{"model": the timm name the config claims (None when no timm ViT has these sizes),
        "kwargs": every architecture argument}: enough for ``build_timm_vit`` either way."""
        cfg = self.cfg
        kwargs = {
            "img_size": cfg.img_size,
            "patch_size": cfg.patch_size,
            "embed_dim": cfg.embed_dim,
            "depth": cfg.depth,
            "num_heads": cfg.num_heads,
            "mlp_ratio": cfg.mlp_ratio,
        }
        return {"model": cfg.timm_model, "kwargs": kwargs}


def build_timm_vit(name: str | None, kwargs: dict) -> nn.Module:
    """``timm.create_model(name, pretrained=False, **kwargs)``, or, with no name, timm's
    ``VisionTransformer(**kwargs)`` (what an export of a size timm has no name for records)."""
    import timm  # only exports and evaluation need it
    from timm.models.vision_transformer import VisionTransformer

    if name is None:
        return VisionTransformer(**kwargs)
    return timm.create_model(name, pretrained=False, **kwargs)
