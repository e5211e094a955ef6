"""`c2f-train eval --protocol linear`: MAE's probe trains the head and leaves the encoder alone."""

from __future__ import annotations

import json

import torch

from training.cli import main
from training.eval import runner
from training.eval.config import LinearConfig
from training.eval.encoder import load_encoder
from training.eval.linear import ProbeHead, train_probe
from training.eval.metrics import topk_accuracy

from .eval_fixtures import eval_argv, export_tiny_encoder, labeled_folders

QUIET = ["--set", "run.num_workers=0", "--set", "run.progress=false"]
SHORT = ["--set", "linear.epochs=3", "--set", "linear.warmup_epochs=1"]


def test_the_probe_learns_separable_features():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 8, generator=g)
    labels = torch.arange(3).repeat(40)
    feats = centres[labels] * 3 + 0.3 * torch.randn(120, 8, generator=g) + 10  # off-centre: BN matters
    head = train_probe(feats, labels, 3, LinearConfig(epochs=30, warmup_epochs=3, batch_size=32), seed=0)
    assert topk_accuracy(head(feats), labels, ks=(1,))["top1"] == 100.0


def test_the_head_is_batchnorm_without_affine_then_linear():
    head = ProbeHead(16, 4)
    assert [name for name, _ in head.named_parameters()] == ["1.weight", "1.bias"]
    assert head[0].running_mean.shape == (16,) and not head[0].affine


def test_the_frozen_encoder_is_unchanged_and_only_the_head_moves(tmp_path, monkeypatch):
    encoder = export_tiny_encoder(tmp_path / "encoder")
    train, val = labeled_folders(tmp_path / "data")
    held = {}

    def spy(spec, **kwargs):
        held["model"] = load_encoder(spec, **kwargs)
        held["before"] = {k: v.clone() for k, v in held["model"].state_dict().items()}
        return held["model"]

    monkeypatch.setattr(runner, "load_encoder", spy)
    assert (
        main(
            [
                *eval_argv(encoder, "linear", train, val),
                "--out",
                str(tmp_path / "out"),
                *QUIET,
                *SHORT,
            ]
        )
        == 0
    )
    after = held["model"].state_dict()
    assert all(torch.equal(after[k], v) for k, v in held["before"].items())
    trained = torch.load(tmp_path / "out" / "linear_head.pth", weights_only=True)
    torch.manual_seed(0)
    fresh = ProbeHead(32, 3).state_dict()
    assert not torch.equal(trained["1.weight"], fresh["1.weight"])
    result = json.loads((tmp_path / "out" / "linear.json").read_text())
    assert result["batch_size"] == 18 and result["lr"] == 0.1 * 18 / 256 and result["optimizer"] == "sgd"
    assert 0 <= result["metrics"]["top1"] <= 100


def test_lars_is_used_for_large_batches_only():
    from training.eval.linear import probe_optimizer

    assert probe_optimizer(LinearConfig(), 16384) == "lars"
    assert probe_optimizer(LinearConfig(), 1000) == "sgd"
    assert probe_optimizer(LinearConfig(optimizer="lars"), 1000) == "lars"
