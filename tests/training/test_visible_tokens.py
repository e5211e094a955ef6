"""Which visible (input, patch) pairs become encoder tokens: modality dropout and the token budget."""

import pytest
import torch

from training.masking.visible_tokens import all_visible, budget_keys, choose_visible, dirichlet_shares

N, K, GROUPS = 64, 8, 3
LABELS = (True, True, False)  # semantic, instance, rgb: the encoder's token groups in C2FMAE's order


def candidates(n: int = N, seed: int = 0):
    """all_visible over three groups of K distinct random patch ids out of 32."""
    g = torch.Generator().manual_seed(seed)
    return all_visible([torch.rand(n, 32, generator=g).argsort(1)[:, :K] for _ in range(GROUPS)])


def choose(cands, seed: int = 1, **switches):
    args = {"dropout": 0.0, "budget": None, "concentration": 1.0, **switches}
    return choose_visible(cands, LABELS, generator=torch.Generator().manual_seed(seed), **args)


def per_group(visible) -> torch.Tensor:
    """[N, G] valid tokens of each group per sample."""
    valid = torch.ones_like(visible.group, dtype=torch.bool) if visible.valid is None else visible.valid
    return torch.stack([((visible.group == g) & valid).sum(1) for g in range(GROUPS)], dim=1)


def test_no_switch_keeps_every_candidate_and_draws_nothing():
    cands = candidates()
    gen = torch.Generator().manual_seed(1)
    state = gen.get_state()
    visible = choose_visible(cands, LABELS, dropout=0.0, budget=None, concentration=1.0, generator=gen)
    assert visible is cands and visible.index is None and visible.valid is None and visible.dropped is None
    assert torch.equal(gen.get_state(), state)


def test_dropout_one_leaves_rgb_only_and_zero_changes_nothing():
    cands = candidates()
    rgb_only = choose(cands, dropout=1.0)
    assert rgb_only.patch.shape == (N, K) and rgb_only.valid is None and rgb_only.dropped.all()
    assert torch.all(rgb_only.group == 2) and torch.equal(rgb_only.patch, cands.patch[:, 2 * K :])
    assert choose(cands, dropout=0.0) is cands


def test_dropout_drops_both_label_inputs_of_a_sample_together():
    visible = choose(candidates(), dropout=0.5)
    counts = per_group(visible)
    dropped = visible.dropped
    assert 0 < dropped.sum() < N  # both kinds of sample in the batch
    assert torch.all(counts[dropped] == torch.tensor([0, 0, K]))
    assert torch.all(counts[~dropped] == K)
    assert visible.patch.shape == (N, 3 * K) and visible.valid is not None  # padded to the longest row
    assert torch.all(visible.valid.sum(1) == counts.sum(1))
    # kept tokens stay in candidate order (a stable sort), padding comes last
    assert torch.equal(visible.index[~dropped], torch.arange(3 * K).expand(int((~dropped).sum()), -1))
    assert torch.equal(visible.index[dropped, :K], torch.arange(2 * K, 3 * K).expand(int(dropped.sum()), -1))
    assert not visible.valid[dropped, K:].any()


@pytest.mark.parametrize("budget", [1, 5, K, 2 * K, 3 * K])
def test_the_budget_keeps_exactly_b_tokens_per_sample_split_by_sample(budget):
    cands = candidates()
    visible = choose(cands, budget=budget)
    counts = per_group(visible)
    assert visible.patch.shape == (N, budget) and visible.valid is None
    assert torch.all(counts.sum(1) == budget) and torch.all(counts <= K)
    if 1 < budget < 3 * K:
        assert len({tuple(c) for c in counts.tolist()}) > 5  # splits vary across samples
    # each token is the candidate it points at, no candidate twice
    assert torch.equal(visible.patch, cands.patch.gather(1, visible.index))
    assert torch.equal(visible.group, cands.group.gather(1, visible.index))
    assert all(len(set(row)) == budget for row in visible.index.tolist())


def test_the_budget_is_reproducible_from_the_generator_seed():
    cands = candidates()
    a, b, c = choose(cands, seed=5, budget=K), choose(cands, seed=5, budget=K), choose(cands, seed=6, budget=K)
    assert torch.equal(a.index, b.index) and not torch.equal(a.index, c.index)


def test_budget_splits_follow_the_dirichlet_shares():
    """D'Hondt apportionment of 10 seats (ties: group order), and over many samples a third each."""
    shares = torch.tensor([[0.52, 0.31, 0.17], [0.12, 0.08, 0.8], [1 / 3, 1 / 3, 1 / 3]])
    keys = budget_keys(shares, K, torch.Generator().manual_seed(0))
    seats = torch.zeros(3, GROUPS, dtype=torch.long)
    order = keys.argsort(dim=1, stable=True)[:, :10]
    seats.scatter_add_(1, order // K, torch.ones_like(order))
    assert seats.tolist() == [[6, 3, 1], [1, 1, 8], [4, 3, 3]]  # 8 = K: no group past its candidates
    visible = choose(candidates(n=2000), budget=12)
    mean = per_group(visible).float().mean(0) / 12
    assert torch.allclose(mean, torch.full((3,), 1 / 3), atol=0.03)


def test_a_small_concentration_gives_lopsided_splits():
    flat = per_group(choose(candidates(n=500), budget=12, concentration=100.0)).float().std(1).mean()
    peaked = per_group(choose(candidates(n=500), budget=12, concentration=0.1)).float().std(1).mean()
    assert peaked > 2 * flat


def test_dirichlet_shares_sum_to_one_over_the_present_groups():
    present = torch.tensor([[True, True, True], [False, False, True], [True, False, True]])
    shares = dirichlet_shares(present, 1.0, torch.Generator().manual_seed(0))
    assert torch.allclose(shares.sum(1), torch.ones(3)) and torch.all(shares[~present] == 0)
    assert shares[1].tolist() == [0.0, 0.0, 1.0]


def test_dropout_with_a_budget_above_len_keep_pads_the_dropped_samples():
    visible = choose(candidates(), dropout=0.5, budget=2 * K)
    counts = per_group(visible)
    dropped = visible.dropped
    assert visible.patch.shape == (N, 2 * K)
    assert torch.all(counts[dropped] == torch.tensor([0, 0, K]))  # all the RGB there is
    assert torch.all(counts[~dropped].sum(1) == 2 * K)
    assert torch.all(visible.valid[dropped, K:] == False)  # noqa: E712


def test_rectangular_per_rank_batches_keep_the_budget():
    """A DDP rank sees its own rows: any split of the batch keeps exactly B per sample."""
    cands = candidates()
    for rows in (slice(0, N // 2), slice(N // 2, N)):
        part = cands._replace(patch=cands.patch[rows], group=cands.group[rows])
        visible = choose(part, budget=K)
        assert visible.patch.shape == (N // 2, K) and torch.all(per_group(visible).sum(1) == K)
