"""Derived seeds: every random stream in training is a pure function of (seed, purpose, counters).

Streams never depend on worker count, process timing or how many steps ran before a restart, which is
what makes resuming and DDP-vs-one-process runs reproduce each other exactly.
"""

from __future__ import annotations

import numpy as np
import torch

# Purposes, so two streams built from the same counters never coincide.
PERMUTATION, CURRICULUM, MASKING = 1, 2, 3


def derive_seed(*parts: int) -> int:
    """Mix non-negative ints into one 63-bit seed (numpy SeedSequence hashing)."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint32)
    return (int(state[0]) << 31 | int(state[1]) >> 1) & (2**63 - 1)


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh torch.Generator on `device` seeded with `seed`."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen
