"""Masking: exact visible counts, batched == per-sample reference, whole segments first."""

import pytest
import torch

from training.masking import INSTANCE, RANDOM, SEMANTIC, generate_masks, num_keep, patch_mode
from training.masking.patch_masks import draw_uniforms


def reference_mode(labels: torch.Tensor, patch: int) -> torch.Tensor:
    """labels: [H, W] -> [L], a Python loop over patches."""
    h, w = labels.shape
    out = []
    for i in range(0, h, patch):
        for j in range(0, w, patch):
            vals = labels[i : i + patch, j : j + patch].flatten()
            vals = vals[vals >= 0]
            if vals.numel() == 0:
                out.append(-1)
                continue
            values, counts = vals.unique(return_counts=True)
            out.append(int(values[counts == counts.max()].min()))
    return torch.tensor(out)


def reference_order(strategy: int, noise, keys, sem_patches, inst_patches) -> torch.Tensor:
    """One sample: [L] patch order by (segment key, noise), segments built by hand."""
    num = noise.shape[0]
    if strategy == RANDOM:
        primary = torch.zeros(num)
    else:
        labels = sem_patches if strategy == SEMANTIC else inst_patches
        background = 0 if strategy == SEMANTIC else 1
        named = sorted({int(v) for v in labels if v >= background})
        seg = [named.index(int(v)) if v >= background else None for v in labels]
        singles = [p for p in range(num) if seg[p] is None]
        seg = [s if s is not None else len(named) + singles.index(p) for p, s in enumerate(seg)]
        primary = keys[torch.tensor(seg)]
    return sorted(range(num), key=lambda p: (float(primary[p]), float(noise[p]), p))


def random_maps(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sem = torch.randint(-1, 4, (n, size // 4, size // 4), generator=g)
    inst = torch.randint(-1, 3, (n, size // 4, size // 4), generator=g)
    return _up4(sem), _up4(inst)


def _up4(maps: torch.Tensor) -> torch.Tensor:
    """[N, h, w] → [N, 4h, 4w], each value repeated over a 4 × 4 block."""
    return maps.repeat_interleave(4, 1).repeat_interleave(4, 2)


def test_patch_mode_matches_reference_and_ignores_negative():
    sem, inst = random_maps(3, 32, seed=0)
    sem[0, :8, :8] = -1
    for labels in (sem, inst):
        got = patch_mode(labels, 8)
        for n in range(labels.shape[0]):
            assert torch.equal(got[n], reference_mode(labels[n], 8))
    assert patch_mode(sem, 8)[0, 0] == -1


@pytest.mark.parametrize("ratio", [0.75, 0.5, 0.9])
def test_every_sample_keeps_exactly_len_keep(ratio):
    sem, inst = random_maps(6, 32, seed=1)
    strategy = torch.tensor([0, 1, 2, 0, 1, 2])
    m = generate_masks(
        strategy,
        num_patches=16,
        mask_ratio=ratio,
        patch_size=8,
        semantic=sem,
        instance=inst,
        generator=torch.Generator().manual_seed(0),
    )
    k = num_keep(16, ratio)
    assert k == int(16 * (1 - ratio))
    assert m.ids_keep.shape == (6, k)
    assert torch.equal(m.mask.sum(1), torch.full((6,), 16.0 - k))
    assert torch.all(m.mask.gather(1, m.ids_keep) == 0)
    shuffle = m.ids_restore.argsort(1)
    assert torch.equal(shuffle[:, :k], m.ids_keep)


def test_batched_equals_per_sample_reference():
    sem, inst = random_maps(9, 32, seed=2)
    strategy = torch.tensor([0, 1, 2] * 3)
    m = generate_masks(
        strategy,
        num_patches=16,
        mask_ratio=0.75,
        patch_size=8,
        semantic=sem,
        instance=inst,
        generator=torch.Generator().manual_seed(3),
    )
    noise, keys = draw_uniforms(9, 16, torch.Generator().manual_seed(3), torch.device("cpu"))
    for n in range(9):
        # labels are pooled on the stride-4 grid: the centre pixel of each 4x4 cell
        sem_p = reference_mode(sem[n, 2::4, 2::4], 2)
        inst_p = reference_mode(inst[n, 2::4, 2::4], 2)
        order = reference_order(int(strategy[n]), noise[n], keys[n], sem_p, inst_p)
        assert m.ids_keep[n].tolist() == order[:4]
        assert m.mask[n].tolist() == [float(p not in order[:4]) for p in range(16)]


def test_guided_masks_hide_whole_segments_first():
    # 4x4 patch grid; semantic: four 2x2-patch quadrants; instance: one object of 4 patches,
    # the rest "no instance" (0).
    quad = torch.arange(4).reshape(2, 2).repeat_interleave(2, 0).repeat_interleave(2, 1)
    sem = quad.repeat_interleave(8, 0).repeat_interleave(8, 1)[None].repeat(64, 1, 1)
    inst = torch.zeros_like(sem)
    inst[:, 8:24, 8:24] = 7
    for seed in range(4):
        gen = torch.Generator().manual_seed(seed)
        m = generate_masks(
            torch.zeros(64, dtype=torch.long),
            num_patches=16,
            mask_ratio=0.75,
            patch_size=8,
            semantic=sem,
            instance=inst,
            generator=gen,
        )
        hidden = m.mask.reshape(64, 2, 2, 2, 2).permute(0, 1, 3, 2, 4).reshape(64, 4, 4).sum(-1)
        # 12 hidden patches = exactly three whole quadrants, the fourth fully visible
        assert torch.equal(hidden.sort(1).values, torch.tensor([0, 4, 4, 4]).expand(64, 4))
        m = generate_masks(
            torch.ones(64, dtype=torch.long),
            num_patches=16,
            mask_ratio=0.25,
            patch_size=8,
            semantic=sem,
            instance=inst,
            generator=gen,
        )
        obj = m.mask.reshape(64, 4, 4)[:, 1:3, 1:3].sum((1, 2))
        # 13 segments (the object + 12 background singletons) and 4 hidden patches: the object
        # is hidden whole in some samples and left whole in others
        assert int((obj == 4).sum()) > 0 and int((obj == 0).sum()) > 0


def test_at_most_one_segment_is_split():
    sem, _ = random_maps(32, 64, seed=7)
    sem = sem.clamp(min=0)
    m = generate_masks(
        torch.zeros(32, dtype=torch.long),
        num_patches=64,
        mask_ratio=0.75,
        patch_size=8,
        semantic=sem,
        generator=torch.Generator().manual_seed(0),
    )
    labels = patch_mode(sem, 8)
    for n in range(32):
        split = [v for v in labels[n].unique() if 0 < m.mask[n][labels[n] == v].mean() < 1]
        assert len(split) <= 1


def test_guided_segment_order_is_random_across_samples():
    sem = torch.zeros(200, 32, 32, dtype=torch.long)
    sem[:, :, 16:] = 1
    m = generate_masks(
        torch.zeros(200, dtype=torch.long),
        num_patches=16,
        mask_ratio=0.5,
        patch_size=8,
        semantic=sem,
        generator=torch.Generator().manual_seed(0),
    )
    left_hidden = m.mask.reshape(200, 4, 4)[:, :, :2].sum((1, 2)) == 8
    assert 60 < int(left_hidden.sum()) < 140


def test_seeded_generator_is_deterministic_and_seed_sensitive():
    sem, inst = random_maps(4, 32, seed=4)
    strategy = torch.tensor([0, 1, 2, 1])

    def run(seed):
        return generate_masks(
            strategy,
            num_patches=16,
            mask_ratio=0.75,
            patch_size=8,
            semantic=sem,
            instance=inst,
            generator=torch.Generator().manual_seed(seed),
        )

    assert torch.equal(run(5).mask, run(5).mask)
    assert not torch.equal(run(5).mask, run(6).mask)


def test_random_masking_needs_no_maps_and_guided_does():
    m = generate_masks(
        torch.full((3,), RANDOM), num_patches=16, mask_ratio=0.75, generator=torch.Generator().manual_seed(0)
    )
    assert m.mask.sum() == 36
    with pytest.raises(ValueError, match="instance-guided"):
        generate_masks(torch.full((3,), INSTANCE), num_patches=16, mask_ratio=0.75)


def mix(weights, n: int, sem=None, inst=None, seed: int = 0, ratio: float = 0.75, grid: int = 4):
    """Patch-mixing masks for n samples with the weights (alpha_S, alpha_I, alpha_R)."""
    w = torch.tensor([weights], dtype=torch.float32).expand(n, 3)
    return generate_masks(
        w,
        num_patches=grid * grid,
        mask_ratio=ratio,
        patch_size=8,
        semantic=sem,
        instance=inst,
        generator=torch.Generator().manual_seed(seed),
    )


@pytest.mark.parametrize("weights, strategy", [((1.0, 0.0, 0.0), SEMANTIC), ((0.0, 0.0, 1.0), RANDOM)])
def test_patch_mixing_at_the_corners_equals_the_pure_strategy(weights, strategy):
    sem, inst = random_maps(16, 32, seed=8)
    pure = generate_masks(
        torch.full((16,), strategy),
        num_patches=16,
        mask_ratio=0.75,
        patch_size=8,
        semantic=sem,
        instance=inst,
        generator=torch.Generator().manual_seed(5),
    )
    mixed = mix(weights, 16, sem, inst, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(pure, mixed))


def test_patch_mixing_weights_apply_per_sample():
    sem, inst = random_maps(6, 32, seed=9)
    rows = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]] * 3)
    mixed = generate_masks(
        rows,
        num_patches=16,
        mask_ratio=0.75,
        patch_size=8,
        semantic=sem,
        instance=inst,
        generator=torch.Generator().manual_seed(2),
    )
    pure = generate_masks(
        torch.tensor([SEMANTIC, RANDOM] * 3),
        num_patches=16,
        mask_ratio=0.75,
        patch_size=8,
        semantic=sem,
        instance=inst,
        generator=torch.Generator().manual_seed(2),
    )
    assert torch.equal(mixed.mask, pure.mask)


def unsplit_fraction(mask: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of (sample, segment) pairs hidden whole or left whole. mask, labels: [N, L]."""
    whole = total = 0
    for m, lab in zip(mask, labels):
        for v in lab.unique():
            share = float(m[lab == v].mean())
            whole, total = whole + (share in (0.0, 1.0)), total + 1
    return whole / total


def test_patch_mixing_hides_whole_segments_more_often_than_random():
    # 8x8 patch grid; semantic: four 4x4-patch quadrants, instance: 2x2-patch blocks
    quad = torch.arange(4).reshape(2, 2).repeat_interleave(32, 0).repeat_interleave(32, 1)
    block = torch.arange(1, 17).reshape(4, 4).repeat_interleave(16, 0).repeat_interleave(16, 1)
    sem, inst = quad[None].repeat(100, 1, 1), block[None].repeat(100, 1, 1)
    labels = patch_mode(inst, 8)
    share = {
        w: unsplit_fraction(mix(w, 100, sem, inst, seed=1, grid=8).mask, labels)
        for w in ((0.0, 0.0, 1.0), (0.4, 0.3, 0.3), (0.0, 1.0, 0.0))
    }
    assert share[(0.0, 0.0, 1.0)] + 0.2 < share[(0.4, 0.3, 0.3)] < share[(0.0, 1.0, 0.0)]


def test_patch_mixing_checks_its_inputs():
    sem, _ = random_maps(3, 32, seed=0)
    assert mix((0.5, 0.0, 0.5), 3, sem).mask.sum() == 36  # no instance map needed at alpha_I = 0
    with pytest.raises(ValueError, match="instance-guided"):
        mix((0.5, 0.1, 0.4), 3, sem)
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        generate_masks(torch.ones(3, 2), num_patches=16, mask_ratio=0.75)
