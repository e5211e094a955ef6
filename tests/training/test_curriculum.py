"""Curriculum: endpoints, normalisation, shapes, sampling, state and its plot."""

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


def test_the_plot_draws_each_weight_over_the_runs_steps(tmp_path):
    import numpy as np
    from matplotlib.colors import to_rgb
    from PIL import Image

    from training.masking.curriculum_plot import COLOURS, curriculum_figure, save_curriculum_plot

    cur = Curriculum()
    ax = curriculum_figure(cur, total_steps=300, stop_step=120).axes[0]
    semantic, instance, random, stop = ax.lines
    for line, k in ((semantic, 0), (instance, 1), (random, 2)):
        steps, values = line.get_xdata(), line.get_ydata()
        assert steps[0] == 0 and steps[-1] == 300
        assert all(math.isclose(v, cur.weights(s / 300)[k]) for s, v in zip(steps, values))
    assert list(stop.get_xdata()) == [120, 120]  # where this run stops (--max-steps)

    path = save_curriculum_plot(cur, tmp_path / "curriculum.png", 300, 120)
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape == (350, 700, 3)
    for colour in COLOURS:  # each strategy's line is on the picture
        rgb = np.round(np.asarray(to_rgb(colour)) * 255)
        assert (np.abs(image.astype(int) - rgb).sum(-1) < 10).any(), colour


def test_the_plot_of_a_constant_curriculum_is_flat_and_has_no_stop_line():
    from training.masking.curriculum_plot import curriculum_figure

    mae = Curriculum(CurriculumConfig(shape="constant", constant_weights=(0.0, 0.0, 1.0)))
    ax = curriculum_figure(mae, total_steps=50, stop_step=50).axes[0]
    assert [set(line.get_ydata()) for line in ax.lines] == [{0.0}, {0.0}, {1.0}]
