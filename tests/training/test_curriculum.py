"""Curriculum: endpoints, normalisation, shapes, sampling and state."""

import math

import pytest
import torch

from training.masking import Curriculum, CurriculumConfig


@pytest.mark.parametrize("shape", ["linear", "cosine"])
def test_default_phases_start_semantic_end_random_and_sum_to_one(shape):
    cur = Curriculum(CurriculumConfig(shape=shape))
    assert cur.weights(0.0) == (1.0, 0.0, 0.0)
    assert cur.weights(0.5) == (0.0, 1.0, 0.0)
    assert cur.weights(1.0) == (0.0, 0.0, 1.0)
    for i in range(101):
        w = cur.weights(i / 100)
        assert min(w) >= 0 and math.isclose(sum(w), 1.0)


def test_crossfade_midpoint_and_cosine_shape():
    lin = Curriculum(CurriculumConfig(boundaries=(0.3, 0.7), crossfades=(0.2, 0.2)))
    cos = Curriculum(CurriculumConfig(shape="cosine", boundaries=(0.3, 0.7), crossfades=(0.2, 0.2)))
    assert lin.weights(0.3)[0] == pytest.approx(0.5) and cos.weights(0.3)[0] == pytest.approx(0.5)
    assert lin.weights(0.25)[0] == pytest.approx(0.75)
    assert cos.weights(0.25)[0] == pytest.approx(0.5 + 0.5 * math.cos(math.pi / 4))
    assert lin.weights(0.75) == pytest.approx((0.0, 0.25, 0.75))


def test_constant_and_invalid_configs():
    cur = Curriculum(CurriculumConfig(shape="constant", constant_weights=(0.2, 0.3, 0.5)))
    assert cur.weights(0.0) == cur.weights(0.9) == (0.2, 0.3, 0.5)
    with pytest.raises(ValueError):
        CurriculumConfig(shape="step")
    with pytest.raises(ValueError):
        CurriculumConfig(boundaries=(0.5, 0.55), crossfades=(0.2, 0.2))
    with pytest.raises(ValueError):
        CurriculumConfig(constant_weights=(0.5, 0.5, 0.5))


def test_sample_frequencies_follow_weights_and_are_seeded():
    cur = Curriculum(CurriculumConfig(shape="constant", constant_weights=(0.2, 0.3, 0.5)))
    s = cur.sample(20000, 0.5, torch.Generator().manual_seed(0))
    assert s.dtype == torch.long and s.shape == (20000,)
    freq = torch.bincount(s, minlength=3).float() / 20000
    assert torch.allclose(freq, torch.tensor([0.2, 0.3, 0.5]), atol=0.02)
    again = cur.sample(20000, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(s, again)
    default = Curriculum()
    assert torch.all(default.sample(500, 0.0, torch.Generator().manual_seed(1)) == 0)
    assert torch.all(default.sample(500, 1.0, torch.Generator().manual_seed(1)) == 2)


def test_patch_mix_hands_every_sample_the_weights():
    cur = Curriculum(CurriculumConfig(mix="patch"))
    w = cur.sample(5, 0.5, torch.Generator().manual_seed(0))
    assert w.dtype == torch.float32 and w.shape == (5, 3)
    assert torch.equal(w, torch.tensor([cur.weights(0.5)] * 5))
    assert torch.equal(cur.sample(2, 0.0), torch.tensor([[1.0, 0.0, 0.0]] * 2))
    with pytest.raises(ValueError, match="mix"):
        CurriculumConfig(mix="pixel")
