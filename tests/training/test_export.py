"""`c2f-train export`: timm's Hugging Face layout, loaded with timm's own `local-dir:` loader,
gives the encoder's features and the training mean/std; its model card reads back with
huggingface_hub's ModelCard; nothing written names an absolute path."""

from __future__ import annotations

import json

import pytest
import timm
import torch
from huggingface_hub import ModelCard
from timm.data import resolve_data_config
from timm.models.vision_transformer import VisionTransformer

from training import engine
from training.checkpoint import load_checkpoint
from training.cli import main
from training.config import TrainConfig, from_dict
from training.data.config import IMAGENET_MEAN, IMAGENET_STD
from training.export import export_encoder, write_encoder
from training.models.factory import build_model
from training.models.timm_layout import GENERIC_ARCH

from .engine_fixtures import tiny_config


@pytest.fixture(scope="module")
def run_dir(tiny_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    engine.train(tiny_config(), tiny_store.path, tiny_store.images, out, max_steps=2)
    return out


def test_timm_loads_the_export_directory_with_its_weights_and_the_training_normalisation(run_dir, tmp_path):
    out = tmp_path / "encoder"
    config = export_encoder(run_dir, out)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert json.loads((out / "config.json").read_text()) == config
    assert config["c2fmae"] == {
        "format_version": 2,
        "run": "run",
        "checkpoint": "latest.pt",
        "step": 2,
        "model_mode": "c2f",
    }
    vit = timm.create_model(f"local-dir:{out}", pretrained=True)
    assert isinstance(vit, VisionTransformer) and vit.num_classes == 0
    same_computation(vit, trained_model(run_dir), [3, 32, 32])
    data = resolve_data_config({}, model=vit)
    assert tuple(data["mean"]) == IMAGENET_MEAN and tuple(data["std"]) == IMAGENET_STD
    assert data["input_size"] == (3, 32, 32) and data["crop_pct"] == 0.875
    assert (data["interpolation"], data["crop_mode"]) == ("bicubic", "center")


def test_the_model_card_reads_back_with_the_hub_metadata_and_says_what_the_encoder_is(run_dir, tmp_path):
    out = tmp_path / "encoder"
    export_encoder(run_dir, out, license="Apache-2.0", dataset="someone/c2fmae-labels")
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "timm" and card.data.pipeline_tag == "image-feature-extraction"
    assert card.data.tags == ["image-feature-extraction", "timm", "c2fmae", "masked-image-modeling"]
    assert card.data.license == "apache-2.0" and card.data.datasets == ["someone/c2fmae-labels"]
    for said in ("Mode `c2f`, 2 optimizer steps", '"hf-hub:USER/REPO"', '"local-dir:DIR"', "(0.485, 0.456, 0.406)"):
        assert said in card.text, said
    assert "differs from the `c2fmae_vit_b16_1600e` preset in" in card.text  # the tiny preset is not the paper's
    assert "Pre-trained only" in card.text
    vit = timm.create_model(f"local-dir:{out}", pretrained=True)  # timm's loader with README.md present
    same_computation(vit, trained_model(run_dir), [3, 32, 32])


def test_a_card_without_options_leaves_licence_and_datasets_unset(run_dir, tmp_path):
    export_encoder(run_dir, tmp_path / "encoder")
    data = ModelCard.load(tmp_path / "encoder" / "README.md").data.to_dict()
    assert "license" not in data and "datasets" not in data and data["library_name"] == "timm"


def test_no_absolute_path_is_written(run_dir, tmp_path):
    out = tmp_path / "encoder"
    export_encoder(run_dir, out, license="mit", dataset="someone/labels")
    assert (out / "README.md").is_file()
    for path in out.iterdir():
        content = path.read_bytes()
        for absolute in {str(run_dir.resolve()), str(tmp_path.resolve()), str(run_dir), "/tmp", "/home", "/work"}:
            assert absolute.encode() not in content, (path.name, absolute)


def test_a_timm_named_export_takes_a_new_head_and_keeps_the_training_normalisation(tmp_path):
    """vit_tiny_patch16_224's own pretrained_cfg says mean/std 0.5; the export's says ImageNet's."""
    sizes = ["model.img_size=224", "model.patch_size=16", "model.embed_dim=192", "model.depth=12"]
    cfg = tiny_config(*sizes, "model.num_heads=3", "data.img_size=224")
    model = build_model(cfg.model, num_classes=1)
    config = write_encoder(model, tmp_path / "vit", 224, cfg.data.mean, cfg.data.std)
    assert config["architecture"] == "vit_tiny_patch16_224"
    assert timm.create_model("vit_tiny_patch16_224").pretrained_cfg["mean"] == (0.5, 0.5, 0.5)
    vit = timm.create_model(f"local-dir:{tmp_path / 'vit'}", pretrained=True)
    assert tuple(vit.pretrained_cfg["mean"]) == IMAGENET_MEAN
    same_computation(vit, model, [3, 224, 224], dtype=torch.float32)
    classifier = timm.create_model(f"local-dir:{tmp_path / 'vit'}", pretrained=True, num_classes=10)
    assert classifier.head.out_features == 10
    qkv = model.encoder_state_dict()["blocks.0.attn.qkv.weight"]
    torch.testing.assert_close(classifier.blocks[0].attn.qkv.weight.detach(), qkv)


def trained_model(run_dir):
    state, _ = load_checkpoint(run_dir)
    model = build_model(from_dict(TrainConfig, state["config"]).model, state["num_classes"])
    model.load_state_dict(state["model"])
    return model


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
    assert main(["export", str(run_dir), "-o", str(tmp_path / "b"), "--license", "cc-by-nc-4.0"]) == 0
    assert (tmp_path / "b" / "model.safetensors").exists() and (tmp_path / "b" / "config.json").exists()
    assert ModelCard.load(tmp_path / "b" / "README.md").data.license == "cc-by-nc-4.0"
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and f'timm.create_model("local-dir:{tmp_path / "b"}", pretrained=True)' in out


@pytest.mark.parametrize(
    "problem",
    ["no run", "a .pth output", "a file in the way", "a licence with a space", "apache2", "other", "a store path"],
)
def test_export_mistakes_are_one_line(run_dir, tmp_path, capsys, problem):
    source, output, options = run_dir, tmp_path / "out", []
    if problem == "no run":
        source = tmp_path
    elif problem == "a .pth output":
        output = tmp_path / "encoder.pth"
    elif problem == "a file in the way":
        output.write_text("not a directory")
    elif problem == "a store path":
        options = ["--dataset", str(tmp_path / "store")]
    else:
        options = ["--license", "Apache 2.0" if problem == "a licence with a space" else problem]
    assert main(["export", str(source), "-o", str(output), *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith("c2f-train: error: ") and err.count("\n") == 1
    if problem == "a .pth output":
        assert "give -o DIR" in err and not output.exists()
    if options:
        assert options[0] in err and not output.exists()


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
    config = export_encoder(old, tmp_path / "old")
    assert config["architecture"] == GENERIC_ARCH and config["model_args"]["patch_size"] == 8
    vit = timm.create_model(f"local-dir:{tmp_path / 'old'}", pretrained=True)
    same_computation(vit, trained_model(run_dir), [3, 32, 32])


def test_an_untrained_encoder_gets_the_same_config_without_provenance(tmp_path):
    model = build_model(tiny_config().model, num_classes=1)
    config = write_encoder(model, tmp_path / "untrained", 32, (0.1, 0.2, 0.3), (0.4, 0.5, 0.6))
    assert json.loads((tmp_path / "untrained" / "config.json").read_text()) == config
    assert config["c2fmae"] == {"format_version": 2}
    vit = timm.create_model(f"local-dir:{tmp_path / 'untrained'}", pretrained=True)
    same_computation(vit, model, [3, 32, 32])
    data = resolve_data_config({}, model=vit)  # a mean/std of the data config, not timm's defaults
    assert tuple(data["mean"]) == (0.1, 0.2, 0.3) and tuple(data["std"]) == (0.4, 0.5, 0.6)


def test_a_failed_export_leaves_the_previous_one_and_no_temporary_file(run_dir, tmp_path, monkeypatch):
    export_encoder(run_dir, tmp_path / "encoder")
    before = {p.name: p.read_bytes() for p in (tmp_path / "encoder").iterdir()}

    def half_then_fail(data):
        def write(f):
            f.write(b"half a file")
            raise RuntimeError("the writer broke")

        return write

    monkeypatch.setattr("training.export.weights_bytes", half_then_fail)
    with pytest.raises(RuntimeError, match="the writer broke"):
        export_encoder(run_dir, tmp_path / "encoder")
    assert {p.name: p.read_bytes() for p in (tmp_path / "encoder").iterdir()} == before
