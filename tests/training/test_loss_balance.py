"""Loss weights and the loss probe: gradient shares at the encoder output, per-strategy losses."""

import dataclasses

import pytest
import torch

from training.losses import instance_loss, rgb_loss, semantic_loss
from training.masking import STRATEGY_NAMES
from training.models import build_model

TINY_CLASSES = 5  # as in conftest.tiny_train_batch
MIXED = torch.tensor([0, 1, 2, 0])
TARGETS = ("semantic", "instance", "rgb")


def make(cfg, **changes):
    torch.manual_seed(0)
    return build_model(dataclasses.replace(cfg, **changes), TINY_CLASSES)


def run(model, batch, strategy=MIXED):
    return model(batch, strategy, torch.Generator().manual_seed(0))


def value(probe: dict, name: str) -> float:
    total, count = probe[name].tolist()
    return total / count


def test_loss_weights_scale_each_term_of_the_total(tiny_model_cfg, tiny_train_batch):
    weights = {"semantic": 0.5, "instance": 0.1, "rgb": 2.0}
    plain = run(make(tiny_model_cfg), tiny_train_batch)
    weighted = run(make(tiny_model_cfg, **{f"{t}_loss_weight": w for t, w in weights.items()}), tiny_train_batch)
    for t in TARGETS:
        assert torch.equal(plain["losses"][t], weighted["losses"][t])  # the weights change only the total
    expected = sum(w * plain["losses"][t] for t, w in weights.items())
    assert torch.allclose(weighted["loss"], expected) and not torch.allclose(weighted["loss"], plain["loss"])


def test_a_zero_weight_takes_a_loss_out_of_the_gradient(tiny_model_cfg, tiny_train_batch):
    model = make(tiny_model_cfg, instance_loss_weight=0.0)
    run(model, tiny_train_batch)["loss"].backward()
    assert model.heads["instance"].weight.grad.abs().sum() == 0
    assert model.heads["semantic"].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("mode", ["c2f", "parallel", "mae"])
def test_gradient_shares_sum_to_one_and_follow_the_weights(mode, tiny_model_cfg, tiny_train_batch):
    model = make(tiny_model_cfg, mode=mode)
    out = run(model, tiny_train_batch)
    probe = model.loss_probe(tiny_train_batch, MIXED, out)
    shares = [value(probe, f"grad_share/{t}") for t in model.targets]
    assert sum(shares) == pytest.approx(1.0) and all(s > 0 for s in shares)
    norm = torch.autograd.grad(out["losses"]["rgb"], out["latent"], retain_graph=True)[0].norm()
    assert value(probe, "grad_norm/rgb") == pytest.approx(float(norm), rel=1e-5)
    if mode != "mae":
        heavier = make(tiny_model_cfg, mode=mode, rgb_loss_weight=10.0)
        out = run(heavier, tiny_train_batch)
        more = heavier.loss_probe(tiny_train_batch, MIXED, out)
        assert value(more, "grad_norm/rgb") == pytest.approx(10 * value(probe, "grad_norm/rgb"), rel=1e-5)
        assert value(more, "grad_share/rgb") > value(probe, "grad_share/rgb")


def test_the_probe_leaves_the_training_gradient_alone(tiny_model_cfg, tiny_train_batch):
    grads = []
    for probe in (False, True):
        model = make(tiny_model_cfg, modality_dropout=0.5, token_budget=6)
        out = run(model, tiny_train_batch)
        if probe:
            model.loss_probe(tiny_train_batch, MIXED, out)
        out["loss"].backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    assert all(torch.equal(grads[0][n], grads[1][n]) for n in grads[0])


def test_per_strategy_losses_group_the_samples_by_their_masks(tiny_model_cfg, tiny_train_batch):
    strategy = torch.tensor([0, 2, 2, 2])  # no instance-guided sample
    model = make(tiny_model_cfg)
    out = run(model, tiny_train_batch, strategy)
    probe = model.loss_probe(tiny_train_batch, strategy, out)
    losses = {"rgb": rgb_loss, "semantic": semantic_loss, "instance": instance_loss}
    for t in TARGETS:
        pred, truth = model.loss_inputs(tiny_train_batch, out["preds"], out["masks"], t)
        for s, name in enumerate(STRATEGY_NAMES):
            if s == 1:
                assert probe[f"loss_{t}/{name}_masks"].tolist() == [0.0, 0.0]  # left out of the log
                continue
            rows = strategy == s  # the batch loss over these samples alone
            expected = losses[t](pred[rows], truth[rows]).item()
            assert value(probe, f"loss_{t}/{name}_masks") == pytest.approx(expected, rel=1e-5), (t, name)


def test_patch_mixing_has_no_per_strategy_losses(tiny_model_cfg, tiny_train_batch):
    model = make(tiny_model_cfg)
    weights = torch.tensor([[0.5, 0.25, 0.25]]).expand(4, 3)
    out = run(model, tiny_train_batch, weights)
    assert all(name.startswith("grad_") for name in model.loss_probe(tiny_train_batch, weights, out))
