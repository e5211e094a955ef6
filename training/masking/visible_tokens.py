"""Which visible (input, patch) pairs become encoder tokens: modality dropout and a token budget.

The masks (``patch_masks``) decide, per target, which patches are hidden (the targets) and which
``len_keep`` are visible. By default the encoder gets every visible patch of every input as a token
(``tokens`` fusion: 3 * len_keep tokens for C2FMAE). Two switches change that, off by default:

- **modality dropout** (``model.modality_dropout = p``): each sample, independently with
  probability p, loses its label inputs, semantic and instance together, so that its encoder input
  is RGB alone, as downstream. Together, not one by one: the point is the RGB-only input of
  fine-tuning; dropping one label map leaves an input fine-tuning never sees either.
- **token budget** (``model.token_budget = B``, MultiMAE-style): every sample keeps exactly B of its
  visible (input, patch) pairs, split across the inputs by shares ``w ~ Dirichlet(alpha)`` drawn per
  sample. B = len_keep costs what MAE's encoder costs.

Conventions, born here:

- groups: the encoder's token groups in order (one per input with ``tokens`` fusion);
- candidates: the groups' ``ids_keep`` concatenated in group order, ``P = G * len_keep`` per sample;
- ``Visible``: the encoder's tokens after cls, ``T`` per sample (rectangular).

Selection is one sort key per candidate and a stable argsort, as in masking: a kept candidate's
key is finite, a dropped one's infinite; with a budget, the r-th candidate (0-based, in a random
order within its group) of a group with share w gets key (r + 1) / w, and the B smallest keys win:
the highest-averages (D'Hondt) apportionment of B seats by the shares, exact in total, never more
than a group's len_keep candidates, with no loop over samples. A sample with fewer than T finite
keys (a dropped sample with B > len_keep) is padded: ``valid`` is False there, and neither the
encoder nor the decoder's cross-attention reads a padding token. T is cut to the longest row.
"""

from typing import NamedTuple

import numpy as np
import torch

from training.masking.patch_masks import draw_uniforms


class Visible(NamedTuple):
    """index: [N, T] into the candidates, None for all P in order; patch: [N, T] patch ids; group:
    [N, T] group ids; valid: [N, T] bool, False on padding, None when all are valid; dropped: [N]
    bool, samples whose label inputs were dropped, None when none was drawn."""

    index: torch.Tensor | None
    patch: torch.Tensor
    group: torch.Tensor
    valid: torch.Tensor | None = None
    dropped: torch.Tensor | None = None


def all_visible(ids_keep: list[torch.Tensor]) -> Visible:
    """Every candidate, in order: ids_keep: one [N, K] per group -> T = P = G * K."""
    patch = torch.cat(ids_keep, dim=1)
    group = torch.cat([torch.full_like(ids, g) for g, ids in enumerate(ids_keep)], dim=1)
    return Visible(None, patch, group)


def draw_dropout(n: int, p: float, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """[N] bool, True with probability p: one uniform per sample from ``generator``."""
    return draw_uniforms(n, 1, generator, device, count=1)[0][:, 0] < p


def dirichlet_shares(present: torch.Tensor, concentration: float, generator: torch.Generator | None) -> torch.Tensor:
    """present: [N, G] bool (at least one per row) -> shares [N, G] float, Dirichlet(concentration)
    over each row's present groups, 0 elsewhere. The N * G gamma draws run in NumPy on the CPU,
    seeded by two integers from ``generator`` (torch samples gammas from the global RNG only)."""
    device = generator.device if generator is not None else present.device
    seed = torch.randint(0, 2**62, (2,), generator=generator, device=device).tolist()
    gamma = np.random.default_rng(seed).gamma(concentration, size=tuple(present.shape))
    gamma = torch.from_numpy(gamma).to(present.device) * present
    # a row whose gammas all underflowed (tiny concentration) gets equal shares
    gamma = torch.where(gamma.sum(1, keepdim=True) > 0, gamma, present.double())
    return (gamma / gamma.sum(1, keepdim=True)).float()


def budget_keys(shares: torch.Tensor, len_keep: int, generator: torch.Generator | None) -> torch.Tensor:
    """shares: [N, G] -> keys [N, G * len_keep], (rank + 1) / share in group-major candidate order,
    rank a uniformly random order within each group, inf where the share is 0."""
    n, g = shares.shape
    noise = draw_uniforms(n, g * len_keep, generator, shares.device, count=1)[0].reshape(n, g, len_keep)
    rank = noise.argsort(dim=-1).argsort(dim=-1)
    share = shares[:, :, None]
    keys = torch.where(share > 0, (rank + 1) / share.clamp(min=1e-30), torch.full_like(noise, torch.inf))
    return keys.flatten(1)


def select(candidates: Visible, keys: torch.Tensor, width: int) -> Visible:
    """The ``width`` smallest keys [N, P] of each row (ties: candidate order), cut to the longest
    row of finite keys; ``valid`` marks the finite ones (None when all are). One host sync."""
    order = keys.argsort(dim=1, stable=True)[:, :width]
    valid = keys.gather(1, order).isfinite()
    longest = int(valid.sum(1).max())
    order, valid = order[:, :longest], valid[:, :longest]
    return Visible(
        order,
        candidates.patch.gather(1, order),
        candidates.group.gather(1, order),
        None if bool(valid.all()) else valid,
        candidates.dropped,
    )


def choose_visible(
    candidates: Visible,
    labels: tuple[bool, ...],
    *,
    dropout: float,
    budget: int | None,
    concentration: float,
    generator: torch.Generator | None,
) -> Visible:
    """The encoder's tokens among ``candidates`` (``all_visible``; G groups of K). labels: one bool per group,
    True for the groups modality dropout removes (none with ``sum`` fusion: the model then zeroes the label
    terms of a dropped sample's fused token). Draws from ``generator`` only for the switches that are on:
    [N] uniforms (dropout), then two seeds (the Dirichlet) and [N, P] uniforms (the budget ranks)."""
    n, num = candidates.patch.shape
    groups, device = len(labels), candidates.patch.device
    present = torch.ones(n, groups, dtype=torch.bool, device=device)
    if dropout:
        candidates = candidates._replace(dropped=draw_dropout(n, dropout, generator, device))
        present = present & ~(candidates.dropped[:, None] & torch.tensor(labels, device=device)[None])
    if budget is None:
        if not dropout or not any(labels):  # nothing to remove from the groups (sum fusion)
            return candidates
        keys = torch.where(present, 0.0, torch.inf).repeat_interleave(num // groups, dim=1)
        return select(candidates, keys, num)
    keys = budget_keys(dirichlet_shares(present, concentration, generator), num // groups, generator)
    return select(candidates, keys, budget)
