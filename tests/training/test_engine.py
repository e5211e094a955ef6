"""The training loop on a tiny store: learning, exact resume, non-finite handling, logs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import training.engine as engine
from training.errors import TrainingError

from .engine_fixtures import read_log, tiny_config
from .worker_processes import workers_left_by


def _losses(run_dir) -> list[float]:
    return [r["loss"] for r in read_log(run_dir / "log.jsonl")]


@pytest.mark.slow
def test_a_few_cpu_steps_reduce_the_loss_and_write_every_channel(tiny_store, tmp_path, monkeypatch):
    drawn = []
    real_pictures = engine.draw_predictions
    monkeypatch.setattr(engine, "draw_predictions", lambda *a: drawn.append(1) or real_pictures(*a))
    cfg = tiny_config(
        "engine.tensorboard=true",
        "engine.image_every=10",
        "engine.progress=true",
        "optim.epochs=8",
        "data.num_workers=1",
    )
    summary, left = workers_left_by(lambda: engine.train(cfg, tiny_store.path, tiny_store.images, tmp_path / "run"))
    assert left == []  # the loader's workers stop when the run ends, not at a later garbage collection
    records = read_log(tmp_path / "run" / "log.jsonl")
    assert [r["step"] for r in records] == list(range(1, 33)) and summary["step"] == 32
    first, last = records[0], records[-1]
    assert sum(r["loss"] for r in records[-4:]) < 0.8 * sum(r["loss"] for r in records[:4])
    for key in (
        "epoch",
        "loss",
        "loss_rgb",
        "loss_semantic",
        "loss_instance",
        "lr",
        "w_semantic",
        "w_instance",
        "w_random",
        "images_per_s",
        "data_wait",
    ):
        assert key in last, key
    assert first["w_semantic"] == 1.0 and last["w_random"] > 0.5  # curriculum moves with progress
    assert 0 <= last["data_wait"] <= 1 and last["epoch"] == 7
    assert sorted(p.name for p in (tmp_path / "run" / "images").iterdir()) == [
        "step-0000010.png",
        "step-0000020.png",
        "step-0000030.png",
    ]
    assert len(drawn) == 3  # pictures are built on the steps that draw, not on every step
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert (tmp_path / "run" / "config.yaml").exists() and (tmp_path / "run" / "latest.pt").exists()


@pytest.mark.parametrize("mode", ["c2f", "mae"])
def test_a_run_draws_its_curriculum_and_sends_its_grids_to_tensorboard(tiny_store, tmp_path, capsys, mode):
    import cv2
    import numpy as np
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    mae = ["model.mode=mae", "curriculum.shape=constant", "curriculum.constant_weights=[0.0, 0.0, 1.0]"]
    cfg = tiny_config("engine.tensorboard=true", "engine.image_every=2", *(mae if mode == "mae" else []))
    run = tmp_path / "run"
    engine.train(cfg, tiny_store.path, tiny_store.images, run, max_steps=4)
    plot = run / engine.CURRICULUM_PLOT
    assert cv2.imread(str(plot)).shape == (350, 700, 3)
    out = capsys.readouterr().out
    assert out.count(f"masking curriculum over 16 steps drawn in {plot}\n") == 1
    losses = run / engine.LOSS_PLOT  # one panel: no probe
    assert cv2.imread(str(losses)).shape == (260, 700, 3)
    assert out.count(f"losses over the run drawn in {losses}\n") == 1
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert events.Tags()["images"] == [engine.GRID_TAG]
    sent = events.Images(engine.GRID_TAG)
    assert [e.step for e in sent] == [2, 4]
    for event in sent:  # the same picture as the PNG written at that step
        picture = cv2.imdecode(np.frombuffer(event.encoded_image_string, np.uint8), cv2.IMREAD_COLOR)
        assert np.array_equal(picture, cv2.imread(str(run / "images" / f"step-{event.step:07d}.png")))


@pytest.mark.slow
def test_max_steps_then_resume_reproduces_the_uninterrupted_run(tiny_store, tmp_path):
    cfg = tiny_config("engine.checkpoint_every=2")
    engine.train(cfg, tiny_store.path, tiny_store.images, tmp_path / "full", max_steps=7)
    engine.train(cfg, tiny_store.path, tiny_store.images, tmp_path / "split", max_steps=3)
    _add_fields_of_older_checkpoints(tmp_path / "split" / "latest.pt")
    engine.train(cfg, tiny_store.path, tiny_store.images, tmp_path / "split", max_steps=7)
    full, split = read_log(tmp_path / "full" / "log.jsonl"), read_log(tmp_path / "split" / "log.jsonl")
    assert [r["step"] for r in split] == list(range(1, 8))
    keys = ("loss", "loss_rgb", "loss_semantic", "loss_instance", "lr", "w_semantic")  # lr: --max-steps
    # and the restart leave the schedule alone
    assert [[r[k] for k in keys] for r in split] == [[r[k] for k in keys] for r in full]
    a = torch.load(tmp_path / "full" / "latest.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "split" / "latest.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def _add_fields_of_older_checkpoints(path) -> None:
    """Checkpoints written before these fields were dropped (they were never read) still resume."""
    state = torch.load(path, weights_only=True)
    state.update(epoch=0, sampler={"epoch": 0, "start_step": 3}, curriculum={"config": {"shape": "linear"}})
    torch.save(state, path)


@pytest.mark.slow
def test_the_loss_probe_logs_gradient_shares_and_strategy_losses_and_changes_nothing(tiny_store, tmp_path):
    import cv2

    switches = ("model.token_budget=6", "model.modality_dropout=0.5", "engine.log_every=2", "optim.epochs=2")
    engine.train(tiny_config(*switches), tiny_store.path, tiny_store.images, tmp_path / "plain", max_steps=6)
    probed_cfg = tiny_config(*switches, "engine.loss_probe=true")
    engine.train(probed_cfg, tiny_store.path, tiny_store.images, tmp_path / "probed", max_steps=6)
    plain, probed = read_log(tmp_path / "plain" / "log.jsonl"), read_log(tmp_path / "probed" / "log.jsonl")
    assert [r["step"] for r in probed] == [2, 4, 6]  # probed on the logged steps only
    targets, strategies = ("semantic", "instance", "rgb"), ("semantic", "instance", "random")
    for a, b in zip(plain, probed):
        assert {k: v for k, v in b.items() if "/" not in k}.keys() == a.keys()
        for key in ("loss", "loss_rgb", "loss_semantic", "loss_instance"):
            assert a[key] == b[key], key  # probing changes no loss
        assert sum(b[f"grad_share/{t}"] for t in targets) == pytest.approx(1.0)
        assert all(b[f"grad_norm/{t}"] > 0 for t in targets)
        used = {s for s in strategies if f"loss_rgb/{s}_masks" in b}
        assert used and all(b[f"w_{s}"] > 0 for s in used)  # a strategy with no sample is left out
        assert all(f"loss_{t}/{s}_masks" in b for t in targets for s in used)
    assert probed[0]["w_semantic"] == 1.0 and {k for k in probed[0] if k.startswith("loss_rgb/")} == {
        "loss_rgb/semantic_masks"
    }
    heights = [cv2.imread(str(tmp_path / r / engine.LOSS_PLOT)).shape[0] for r in ("plain", "probed")]
    assert heights == [260, 780]  # the probe's two panels: gradient shares, per-strategy losses
    a = torch.load(tmp_path / "plain" / "latest.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "probed" / "latest.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


class _NonFiniteAt(nn.Module):
    """Wraps the real model; its loss is NaN on the listed forward calls (0-based)."""

    def __init__(self, inner: nn.Module, bad: set[int]):
        super().__init__()
        self.inner, self.bad, self.calls = inner, bad, 0

    def forward(self, batch, strategy, generator):
        out = self.inner(batch, strategy, generator)
        if self.calls in self.bad:
            out = {**out, "loss": out["loss"] * float("nan")}
        self.calls += 1
        return out


def _patch_model(monkeypatch, bad: set[int]) -> list:
    made = []
    real = engine.build_model

    def build(cfg, num_classes):
        made.append(_NonFiniteAt(real(cfg, num_classes), bad))
        return made[-1]

    monkeypatch.setattr(engine, "build_model", build)
    return made


def test_a_non_finite_loss_skips_the_update_and_is_counted(tiny_store, tmp_path, monkeypatch):
    made = _patch_model(monkeypatch, bad={1})
    snapshots = []
    real_step = engine.train_step

    def spy(*args):
        result = real_step(*args)
        snapshots.append([p.detach().clone() for p in made[0].parameters()])
        return result

    monkeypatch.setattr(engine, "train_step", spy)
    engine.train(tiny_config(), tiny_store.path, tiny_store.images, tmp_path / "run", max_steps=3)
    assert all(torch.equal(a, b) for a, b in zip(snapshots[0], snapshots[1]))  # step 2 skipped
    assert not all(torch.equal(a, b) for a, b in zip(snapshots[1], snapshots[2]))
    records = read_log(tmp_path / "run" / "log.jsonl")
    assert [r["nonfinite"] for r in records] == [0, 1, 1]
    assert records[1]["loss"] is None  # strict JSON: a non-finite value is logged as null


def test_too_many_non_finite_losses_abort_with_a_clear_error(tiny_store, tmp_path, monkeypatch):
    _patch_model(monkeypatch, bad={0, 1, 2})
    with pytest.raises(TrainingError, match=r"non-finite on 3 steps.*max_nonfinite=2"):
        engine.train(
            tiny_config("engine.max_nonfinite=2"), tiny_store.path, tiny_store.images, tmp_path / "run", max_steps=5
        )


def test_gradient_accumulation_matches_one_big_batch_schedule(tiny_store, tmp_path):
    cfg = tiny_config("optim.batch_size=2", "optim.accum_iter=2")
    engine.train(cfg, tiny_store.path, tiny_store.images, tmp_path / "run", max_steps=2)
    records = read_log(tmp_path / "run" / "log.jsonl")
    assert records[0]["lr"] == pytest.approx(0.05 * 4 / 256 / 4)  # warmup step 1 of 4, batch 4


class _MeanSquare(nn.Module):
    """A loss that is a mean over samples and ignores the masking inputs, so that two micro-batches
    of 2 and one batch of 4 see the same function."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3, 4)

    def forward(self, batch, strategy, generator):
        pooled = batch["image"].mean((2, 3))  # [N, 3]
        loss = (self.proj(pooled) - batch["index"][:, None].float()).pow(2).mean()
        return {"loss": loss, "losses": {"rgb": loss}}


def test_gradient_accumulation_matches_one_big_batch_step():
    from training.masking import Curriculum
    from training.optim import build_optimizer
    from training.step import StepContext, train_step

    cfg = tiny_config()
    big = _synthetic_batch(n=4)
    halves = [{k: v[:2] for k, v in big.items()}, {k: v[2:] for k, v in big.items()}]
    runs = []
    for batches in ([big], halves):
        torch.manual_seed(0)
        model = _MeanSquare()
        ctx = StepContext(
            model=model,
            optimizer=build_optimizer(model, cfg.optim, 1),
            scaler=None,
            curriculum=Curriculum(cfg.curriculum),
            device=torch.device("cpu"),
            amp_dtype=None,
            clip_grad=None,
            seed=0,
            micro_id=lambda m: m,
        )
        result = train_step(ctx, batches, step=0, progress=0.0)
        runs.append(
            (
                result.losses["loss"],
                [p.grad.clone() for p in model.parameters()],
                [p.detach().clone() for p in model.parameters()],
            )
        )
    (loss_a, grads_a, params_a), (loss_b, grads_b, params_b) = runs
    assert torch.allclose(loss_a, loss_b)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads_a, grads_b))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(params_a, params_b))
    assert any(g.abs().sum() > 0 for g in grads_a)


def _synthetic_batch(n: int = 4, size: int = 32, classes: int = 6) -> dict:
    gen = torch.Generator().manual_seed(0)
    return {
        "image": torch.randn(n, 3, size, size, generator=gen),
        "semantic": torch.randint(-1, classes, (n, size, size), generator=gen),
        "instance": torch.randint(0, 4, (n, size, size), generator=gen),
        "index": torch.arange(n),
    }


@pytest.mark.parametrize("amp", [torch.bfloat16, None])
def test_train_step_autocast_and_clipping(amp):
    from training.masking import Curriculum
    from training.optim import build_optimizer
    from training.step import StepContext, train_step

    cfg = tiny_config("optim.clip_grad=0.5")
    torch.manual_seed(0)
    model = engine.build_model(cfg.model, num_classes=6)
    before = [p.detach().clone() for p in model.parameters()]
    ctx = StepContext(
        model=model,
        optimizer=build_optimizer(model, cfg.optim, 1),
        scaler=None,
        curriculum=Curriculum(cfg.curriculum),
        device=torch.device("cpu"),
        amp_dtype=amp,
        clip_grad=0.5,
        seed=0,
        micro_id=lambda m: m,
    )
    result = train_step(ctx, [_synthetic_batch(), _synthetic_batch()], step=0, progress=0.5)
    assert result.finite and result.grad_norm is not None and result.grad_norm > 0
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in result.losses.values())
    assert {"loss", "loss_rgb", "loss_semantic", "loss_instance"} <= set(result.losses)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


class _Spy(nn.Module):
    """Wraps the real model and records the strategy argument of each forward call."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner, self.strategies = inner, []

    def forward(self, batch, strategy, generator):
        self.strategies.append(strategy)
        return self.inner(batch, strategy, generator)


@pytest.mark.parametrize("mix", ["sample", "patch"])
def test_train_step_hands_the_curriculum_mix_to_the_model(mix):
    from training.masking import Curriculum
    from training.optim import build_optimizer
    from training.step import StepContext, train_step

    cfg = tiny_config(f"curriculum.mix={mix}")
    torch.manual_seed(0)
    model = _Spy(engine.build_model(cfg.model, num_classes=6))
    curriculum = Curriculum(cfg.curriculum)
    ctx = StepContext(
        model=model,
        optimizer=build_optimizer(model, cfg.optim, 1),
        scaler=None,
        curriculum=curriculum,
        device=torch.device("cpu"),
        amp_dtype=None,
        clip_grad=None,
        seed=0,
        micro_id=lambda m: m,
    )
    assert train_step(ctx, [_synthetic_batch()], step=3, progress=0.4).finite
    (strategy,) = model.strategies
    if mix == "patch":
        assert torch.equal(strategy, torch.tensor([curriculum.weights(0.4)] * 4))
    else:
        assert strategy.dtype == torch.long and strategy.shape == (4,)


def test_a_checkpoint_refused_without_a_message_is_one_line(tmp_path, monkeypatch):
    class Refuses(nn.Linear):
        def load_state_dict(self, *args, **kwargs):
            raise RuntimeError()

    path = tmp_path / "run" / "latest.pt"
    monkeypatch.setattr(engine, "load_checkpoint", lambda run_dir: ({"model": {}, "config": {}}, path))
    monkeypatch.setattr(engine, "check_compatible", lambda *args: None)
    monkeypatch.setattr(engine, "_warn_changes", lambda *args: None)
    (tmp_path / "run").mkdir()
    with pytest.raises(TrainingError, match=r"latest.pt does not fit this run: RuntimeError$"):
        engine._resume(tiny_config(), tmp_path / "run", Refuses(2, 2), None, None)


def test_a_loss_picture_that_cannot_be_written_is_a_warning_not_a_failed_run(tiny_store, tmp_path, capsys, monkeypatch):
    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(engine, "save_loss_plot", full_disk)
    summary = engine.train(tiny_config(), tiny_store.path, tiny_store.images, tmp_path / "run", max_steps=2)
    assert summary["step"] == 2 and (tmp_path / "run" / "latest.pt").is_file()
    plot = tmp_path / "run" / engine.LOSS_PLOT
    assert f"c2f-train: warning: {plot} not drawn ([Errno 28] No space left on device)\n" in capsys.readouterr().out
