"""Instance ids renamed at random: what an instance loss or embedding must not notice."""

import torch


def relabel(ids: torch.Tensor, seed: int) -> torch.Tensor:
    """`ids` [N, ...] with a random permutation applied to the ids >= 1, per sample; 0 and -1 stay."""
    g = torch.Generator().manual_seed(seed)
    out = ids.clone()
    for n in range(ids.shape[0]):
        perm = torch.randperm(int(ids.max()) + 1000, generator=g) + 1
        pos = ids[n] > 0
        out[n][pos] = perm[ids[n][pos] - 1]
    return out
