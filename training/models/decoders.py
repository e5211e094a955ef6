"""The decoders a C2FMAE model is built with; ``factory.build_model`` picks one:

- ``CascadeDecoder``: semantic -> instance -> RGB stages, each later stage also seeing the previous
  stage's output (the paper's decoder);
- ``ParallelDecoder``: the same three stages, each seeing only the encoder (the ablation);
- ``MAEDecoder``: MAE's decoder, RGB only.

Each maps latent: [N, 1 + T, D] (the encoder output, cls first), the masks (target -> ``Masks``)
and ``visible`` (which input and patch each encoder token is, ``training.masking.visible_tokens``)
to features at each target's masked patches: target -> [N, M, Dd]; the model's heads turn them into
predictions. Attribute names are the checkpoints' names: the model registers a decoder's parts
under them, without a prefix.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.layers.blocks import vit_block
from training.layers.cascade import CascadeStage, scatter_to_grid
from training.layers.patch_embed import sincos_pos_embed
from training.masking import Masks
from training.masking.visible_tokens import Visible
from training.patches import gather_patches

TARGETS = ("semantic", "instance", "rgb")  # coarse to fine: the cascade's order


class MAEDecoder(nn.Module):
    """MAE's decoder: the visible tokens and mask tokens unshuffled onto the grid, plain
    transformer blocks over all of them; RGB only, so its tokens are the RGB mask's ``ids_keep``
    and ``visible`` says nothing more."""

    def __init__(self, embed_dim: int, dim: int, grid: int, depth: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.decoder_embed = nn.Linear(embed_dim, dim)
        self.decoder_pos_embed = nn.Parameter(sincos_pos_embed(dim, grid)[None], requires_grad=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.decoder_blocks = nn.Sequential(*[vit_block(dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.decoder_norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, latent: torch.Tensor, masks: dict[str, Masks], visible: Visible) -> dict[str, torch.Tensor]:
        rgb = masks["rgb"]
        x = self.decoder_embed(latent)
        n, num = x.shape[0], self.decoder_pos_embed.shape[1]
        fill = self.mask_token.expand(n, num - rgb.ids_keep.shape[1], -1).to(x.dtype)
        grid = gather_patches(torch.cat([x[:, 1:], fill], dim=1), rgb.ids_restore)
        x = torch.cat([x[:, :1], grid + self.decoder_pos_embed], dim=1)
        x = self.decoder_norm(self.decoder_blocks(x))[:, 1:]
        return {"rgb": gather_patches(x, rgb.ids_masked())}


class StageDecoder(nn.Module):
    """What the cascade and the parallel decoder share: one ``CascadeStage`` per target and the
    context H every stage sees. ``sources``: the target whose mask kept each group of encoder
    tokens after cls, in the encoder's order; ``context_embed``: see ``context``."""

    def __init__(
        self,
        embed_dim: int,
        dim: int,
        grid: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        sources: tuple[str, ...],
        context_embed: bool,
    ):
        super().__init__()
        self.sources = sources
        self.decoder_embed = nn.Linear(embed_dim, dim)
        self.decoder_pos_embed = nn.Parameter(sincos_pos_embed(dim, grid)[None], requires_grad=False)
        self.stages = nn.ModuleDict({t: CascadeStage(dim, depth, num_heads, mlp_ratio) for t in TARGETS})
        self.decoder_source_embed = nn.Embedding(len(sources), dim) if context_embed else None

    def context(self, latent: torch.Tensor, visible: Visible) -> tuple[torch.Tensor, torch.Tensor | None]:
        """H = decoder_embed(latent): [N, 1 + T, Dd], plus, with ``context_embed``, on each token
        after cls the decoder position embedding of its patch and the embedding of the input it
        came from (cross-attention alone cannot tell where a token sits); and which of H a query
        may attend to: [N, 1 + T] bool, None for all (padding tokens are not attended to)."""
        h = self.decoder_embed(latent)
        attend = None if visible.valid is None else F.pad(visible.valid, (1, 0), value=True)
        if self.decoder_source_embed is None:
            return h, attend
        return torch.cat([h[:, :1], h[:, 1:] + self.token_embed(visible).to(h.dtype)], dim=1), attend

    def token_embed(self, visible: Visible) -> torch.Tensor:
        """[N, T, Dd]: each token's decoder position embedding plus its input's embedding."""
        pos, source = self.decoder_pos_embed.expand(visible.patch.shape[0], -1, -1), self.decoder_source_embed
        if visible.index is None:  # whole groups in order: one broadcast row each (bit for bit as before the switches)
            groups = visible.patch.chunk(len(self.sources), dim=1)
            return torch.cat([gather_patches(pos, ids) + source.weight[i] for i, ids in enumerate(groups)], dim=1)
        return gather_patches(pos, visible.patch) + source(visible.group)

    def queries(self, masks: dict[str, Masks]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Per target: ids [N, M] of its masked patches and their decoder positions [N, M, Dd]."""
        ids = {t: masks[t].ids_masked() for t in TARGETS}
        table = self.decoder_pos_embed.expand(ids["rgb"].shape[0], -1, -1)
        return ids, {t: gather_patches(table, ids[t]) for t in TARGETS}


class CascadeDecoder(StageDecoder):
    """Semantic -> instance -> RGB: a later stage's K = V is H (+) scatter(F_prev)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.grid_token = nn.Parameter(torch.zeros(1, 1, self.decoder_embed.out_features))

    def forward(self, latent: torch.Tensor, masks: dict[str, Masks], visible: Visible) -> dict[str, torch.Tensor]:
        h, attend = self.context(latent, visible)
        ids, pos = self.queries(masks)
        after = None if attend is None else F.pad(attend, (0, self.decoder_pos_embed.shape[1]), value=True)
        f_sem = self.stages["semantic"](pos["semantic"], h, attend)
        f_inst = self.stages["instance"](pos["instance"], self.after(h, f_sem, ids["semantic"]), after)
        f_rgb = self.stages["rgb"](pos["rgb"], self.after(h, f_inst, ids["instance"]), after)
        return {"semantic": f_sem, "instance": f_inst, "rgb": f_rgb}

    def after(self, h: torch.Tensor, prev: torch.Tensor, prev_ids: torch.Tensor) -> torch.Tensor:
        """K = V of the stage after one that decoded prev [N, M, Dd] at prev_ids [N, M]:
        H (+) its features on the full grid: [N, 1 + T + L, Dd] (all L attended to)."""
        return torch.cat([h, scatter_to_grid(prev, prev_ids, self.grid_token, self.decoder_pos_embed)], dim=1)


class ParallelDecoder(StageDecoder):
    """Every stage's K = V is H alone: no stage depends on another."""

    def forward(self, latent: torch.Tensor, masks: dict[str, Masks], visible: Visible) -> dict[str, torch.Tensor]:
        h, attend = self.context(latent, visible)
        _, pos = self.queries(masks)
        return {t: stage(pos[t], h, attend) for t, stage in self.stages.items()}
