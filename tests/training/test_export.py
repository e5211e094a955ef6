"""`c2f-train export`: the encoder loads strict into timm and computes the same features."""

from __future__ import annotations

import json

import pytest
import timm
import torch
from timm.models.vision_transformer import VisionTransformer

from training import engine
from training.checkpoint import load_checkpoint
from training.cli import main
from training.config import TrainConfig, from_dict
from training.export import export_encoder, write_encoder
from training.models.factory import build_model

from .engine_fixtures import tiny_config


@pytest.fixture(scope="module")
def run_dir(tiny_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    engine.train(tiny_config(), tiny_store.path, tiny_store.images, out, max_steps=2)
    return out


def test_export_loads_strict_into_timm_and_matches_the_encoder(run_dir, tmp_path):
    record = export_encoder(run_dir, tmp_path / "encoder.pth")
    meta = json.loads((tmp_path / "encoder.json").read_text())
    assert meta == record and meta["format_version"] == 1 and meta["step"] == 2
    assert meta["input_size"] == [3, 32, 32] and len(meta["mean"]) == len(meta["std"]) == 3
    assert meta["timm_model"] is None  # no timm name has the tiny sizes: VisionTransformer kwargs
    vit = VisionTransformer(**meta["timm_kwargs"])
    vit.load_state_dict(torch.load(tmp_path / "encoder.pth", weights_only=True), strict=True)
    state, _ = load_checkpoint(run_dir)
    model = build_model(from_dict(TrainConfig, state["config"]).model, state["num_classes"])
    model.load_state_dict(state["model"])
    same_computation(vit, model, meta["input_size"])


def same_computation(vit, model, input_size, dtype=torch.float64) -> None:
    """timm's ViT and our encoder give the same features (the same ops, LayerNorm eps included:
    eps 1e-5 against 1e-6 moves the cls token's features by far more than rounding)."""
    image = torch.randn(1, *input_size, generator=torch.Generator().manual_seed(0), dtype=dtype)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    with torch.no_grad():
        torch.testing.assert_close(
            vit.to(dtype).eval().forward_features(image),
            model.to(dtype).eval().forward_features(image),
            rtol=tol,
            atol=tol,
        )


def test_export_command(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), "-o", str(tmp_path / "b.pth")]) == 0
    assert (tmp_path / "b.pth").exists() and (tmp_path / "b.json").exists()
    assert "b.pth" in capsys.readouterr().out


def test_export_without_a_run_is_a_one_line_error(tmp_path, capsys):
    assert main(["export", str(tmp_path), "-o", str(tmp_path / "e.pth")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("c2f-train: error: ") and err.count("\n") == 1


@pytest.mark.slow
def test_the_paper_config_exports_to_timm_vit_base_patch16_224_and_computes_the_same():
    from training.config import load_config

    cfg = load_config("c2fmae_vit_b16_1600e")
    model = build_model(cfg.model, num_classes=150)
    spec = model.timm_spec()
    assert spec["model"] == "vit_base_patch16_224"
    vit = timm.create_model(spec["model"], pretrained=False, num_classes=0, **spec["kwargs"])
    vit.load_state_dict(model.encoder_state_dict(), strict=True)
    same_computation(vit, model, [3, 224, 224], dtype=torch.float32)


def test_a_run_from_before_timm_names_were_checked_exports_without_the_false_name(run_dir, tmp_path):
    old = tmp_path / "old_run"
    old.mkdir()
    state = torch.load(run_dir / "latest.pt", weights_only=True)
    state["config"]["model"]["timm_model"] = "vit_tiny_patch16_224"  # what the tiny preset claimed
    del state["config"]["model"]["arch"]
    torch.save(state, old / "latest.pt")
    record = export_encoder(old, tmp_path / "old.pth")
    assert record["timm_model"] is None and record["timm_kwargs"]["patch_size"] == 8


def test_an_untrained_encoder_gets_the_same_record_without_provenance(tmp_path):
    cfg = tiny_config()
    model = build_model(cfg.model, num_classes=1)
    record = write_encoder(model, tmp_path / "untrained.pth", 32, cfg.data.mean, cfg.data.std)
    assert json.loads((tmp_path / "untrained.json").read_text()) == record
    assert list(record) == ["format_version", "timm_model", "timm_kwargs", "input_size", "mean", "std"]
    vit = VisionTransformer(**record["timm_kwargs"])
    vit.load_state_dict(torch.load(tmp_path / "untrained.pth", weights_only=True), strict=True)


def test_a_failed_export_leaves_the_previous_one_and_no_temporary_file(run_dir, tmp_path, monkeypatch):
    export_encoder(run_dir, tmp_path / "encoder.pth")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def half_then_fail(obj, f):
        f.write(b"half a state dict")
        raise RuntimeError("the writer broke")

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(RuntimeError, match="the writer broke"):
        export_encoder(run_dir, tmp_path / "encoder.pth")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
