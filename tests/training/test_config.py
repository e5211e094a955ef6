"""Typed, layered, strict config: defaults <- YAML (with base:) <- --set overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from plumbing.errors import ConfigError
from training.cli import main
from training.config import TrainConfig, load_config, save_config, to_dict
from training.masking import Curriculum
from training.models import ARCH_PRESETS, build_model
from training.models.encoder_io import build_timm_vit

from ..plumbing.config_fixtures import BILLION_LAUGHS, SECRET

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


def _write(path: Path, tree: dict) -> Path:
    path.write_text(yaml.safe_dump(tree))
    return path


def test_defaults_are_the_published_mae_recipe():
    cfg = load_config()
    assert cfg.optim.blr == 1.5e-4 and cfg.optim.weight_decay == 0.05
    assert cfg.optim.betas == (0.9, 0.95) and cfg.optim.warmup_epochs == 40 and cfg.optim.epochs == 1600
    assert cfg.optim.min_lr == 0 and cfg.optim.clip_grad is None


def test_layers_apply_in_order_and_base_is_relative_to_the_file(tmp_path):
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "base.yaml", {"optim": {"blr": 1e-3, "epochs": 10}, "engine": {"seed": 3}})
    child = _write(tmp_path / "sub" / "child.yaml", {"base": "../base.yaml", "optim": {"epochs": 20}})
    cfg = load_config(child, ["engine.seed=7", "optim.betas=[0.8, 0.9]"])
    assert (cfg.optim.blr, cfg.optim.epochs, cfg.engine.seed) == (1e-3, 20, 7)
    assert cfg.optim.betas == (0.8, 0.9)


def test_unknown_key_names_the_file_and_the_closest_key(tmp_path):
    path = _write(tmp_path / "typo.yaml", {"optim": {"blr_": 1e-3}})
    with pytest.raises(ConfigError, match=r"typo.yaml: unknown key 'optim.blr_'; did you mean 'optim.blr'\?$"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"^--set: unknown key 'engine.sed'; did you mean 'engine.seed'"):
        load_config(None, ["engine.sed=1"])


def test_wrong_types_are_errors_naming_the_key():
    with pytest.raises(ConfigError, match="^--set: optim.batch_size: .*valid integer.*got 1.5$"):
        load_config(None, ["optim.batch_size=1.5"])
    with pytest.raises(ConfigError, match="^--set: engine.tensorboard: .*valid boolean.*got 1$"):
        load_config(None, ["engine.tensorboard=1"])
    with pytest.raises(ConfigError, match="^--set: engine.amp: Input should be 'bf16', 'fp16' or 'off', got 'fp8'$"):
        load_config(None, ["engine.amp=fp8"])
    with pytest.raises(ConfigError, match=r"^--set: optim.betas\[1\]: Field required$"):
        load_config(None, ["optim.betas=[0.9]"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["optim.blr"])
    assert load_config(None, ["engine.amp=off"]).engine.amp == "off"  # YAML 1.1 would read false


def test_invalid_values_name_their_key():
    with pytest.raises(ConfigError, match="^--set: optim.batch_size: .*greater than or equal to 1, got 0$"):
        load_config(None, ["optim.batch_size=0"])
    with pytest.raises(
        ConfigError, match="^--set: model.mode: Input should be 'c2f', 'parallel' or 'mae', got 'bogus'$"
    ):
        load_config(None, ["model.mode=bogus"])
    with pytest.raises(ConfigError, match=r"^--set: config: data.img_size \(64\) must equal model.img_size"):
        load_config(None, ["data.img_size=64"])
    with pytest.raises(ConfigError, match="^--set: data.num_workers: .*greater than or equal to 0, got -1$"):
        load_config(None, ["data.num_workers=-1"])
    for key in ("patch_size", "depth", "decoder_heads"):
        with pytest.raises(ConfigError, match=rf"^--set: model.{key}: .*greater than or equal to 1, got 0$"):
            load_config(None, [f"model.{key}=0"])
    with pytest.raises(ConfigError, match=r"^--set: model: need img_size % patch_size == 0"):
        load_config(None, ["model.patch_size=6"])


def test_the_comparison_switches_are_off_by_default_and_checked():
    cfg = load_config()
    assert (cfg.model.modality_dropout, cfg.model.token_budget, cfg.engine.loss_probe) == (0.0, None, False)
    assert (cfg.model.semantic_loss_weight, cfg.model.instance_loss_weight, cfg.model.rgb_loss_weight) == (1, 1, 1)
    sets = ["model.modality_dropout=1", "model.token_budget=49", "model.budget_concentration=0.5"]
    assert load_config(None, [*sets, "model.instance_loss_weight=0.1"]).model.token_budget == 49
    with pytest.raises(ConfigError, match=r"^--set: model.modality_dropout: .*less than or equal to 1, got 1.5$"):
        load_config(None, ["model.modality_dropout=1.5"])
    with pytest.raises(ConfigError, match=r"^--set: model: token_budget 148 is more than the 147 visible"):
        load_config(None, ["model.token_budget=148"])
    with pytest.raises(ConfigError, match=r"^--set: model: token_budget splits .* needs input_fusion 'tokens'"):
        load_config(None, ["model.token_budget=10", "model.input_fusion=sum"])
    with pytest.raises(ConfigError, match=r"^--set: model: modality_dropout and token_budget need label inputs"):
        load_config(None, ["model.modality_dropout=0.5", "model.mode=mae"])
    assert load_config(None, ["model.modality_dropout=0.5", "model.input_fusion=sum"]).model.modality_dropout == 0.5


def test_yaml_1_1_exponents_and_nulls_parse_as_numbers():
    cfg = load_config(None, ["optim.blr=1e-4", "optim.clip_grad=3", "optim.min_lr=0"])
    assert cfg.optim.blr == 1e-4 and cfg.optim.clip_grad == 3.0 and isinstance(cfg.optim.min_lr, float)
    assert load_config(None, ["optim.clip_grad=null"]).optim.clip_grad is None


def test_base_loop_is_an_error(tmp_path):
    _write(tmp_path / "a.yaml", {"base": "b.yaml"})
    _write(tmp_path / "b.yaml", {"base": "a.yaml"})
    with pytest.raises(ConfigError, match="loops"):
        load_config(tmp_path / "a.yaml")


def test_saved_config_loads_back_identically(tmp_path):
    cfg = load_config(None, ["optim.blr=2e-4", "engine.seed=5"])
    save_config(cfg, tmp_path / "config.yaml")
    assert to_dict(load_config(tmp_path / "config.yaml")) == to_dict(cfg)


TRAIN_CONFIGS = (
    "c2fmae_vit_b16_1600e.yaml",
    "c2fmae_tiny_cpu.yaml",
    "mae_vit_b16.yaml",
    "parallel_vit_b16.yaml",
    "mae_tiny_cpu.yaml",
    "parallel_tiny_cpu.yaml",
    "c2fmae_nocurriculum_vit_b16.yaml",
    "c2fmae_nocurriculum_tiny_cpu.yaml",
)


def test_every_shipped_training_config_loads():
    for name in TRAIN_CONFIGS:
        assert isinstance(load_config(CONFIGS / name), TrainConfig), name
        assert (CONFIGS / name).read_text().startswith("#"), f"{name}: first line must say the command"


def test_every_section_and_its_keys_are_in_the_config():
    tree = to_dict(load_config())
    assert {"optim", "engine", "model", "data", "curriculum"} <= set(tree)
    assert "blr" in tree["optim"] and "seed" in tree["engine"]


def test_ablation_configs_differ_from_c2fmae_in_the_model_mode():
    mae_conventions = {"warmup_from_zero": True, "decay_rule": "mae"}  # MAE's code, only for mae
    for size in ("vit_b16", "tiny_cpu"):
        base = to_dict(
            load_config(CONFIGS / ("c2fmae_vit_b16_1600e.yaml" if size == "vit_b16" else "c2fmae_tiny_cpu.yaml"))
        )
        for mode in ("mae", "parallel"):
            other = to_dict(load_config(CONFIGS / f"{mode}_{size}.yaml"))
            assert other["model"]["mode"] == mode
            if mode == "mae":
                assert {k: other["optim"][k] for k in mae_conventions} == mae_conventions
                other["optim"].update({k: base["optim"][k] for k in mae_conventions})
            assert {k: v for k, v in other.items() if k not in ("model", "curriculum")} == {
                k: v for k, v in base.items() if k not in ("model", "curriculum")
            }
    tiny = load_config(CONFIGS / "c2fmae_tiny_cpu.yaml")
    assert tiny.engine.log_every == 1 and tiny.engine.device == "cpu"


def test_nocurriculum_configs_are_c2fmae_with_random_masking_only():
    for base_name, name in (
        ("c2fmae_vit_b16_1600e.yaml", "c2fmae_nocurriculum_vit_b16.yaml"),
        ("c2fmae_tiny_cpu.yaml", "c2fmae_nocurriculum_tiny_cpu.yaml"),
    ):
        base, cfg = load_config(CONFIGS / base_name), load_config(CONFIGS / name)
        assert {k: v for k, v in to_dict(cfg).items() if k != "curriculum"} == {
            k: v for k, v in to_dict(base).items() if k != "curriculum"
        }
        assert cfg.model.mode == "c2f"
        assert all(Curriculum(cfg.curriculum).weights(t / 10) == (0.0, 0.0, 1.0) for t in range(11))


def test_model_arch_fills_the_preset_sizes_in_its_own_layer(tmp_path):
    cfg = load_config(None, ["model.arch=vit_tiny_cpu", "model.depth=2", "data.img_size=64"])
    tiny = ARCH_PRESETS["vit_tiny_cpu"]
    assert (cfg.model.embed_dim, cfg.model.patch_size, cfg.model.depth) == (tiny["embed_dim"], 8, 2)
    assert cfg.model.timm_model is None
    # a file's explicit ViT-B sizes give way to a later layer's arch, not the other way round
    child = _write(
        tmp_path / "child.yaml",
        {
            "base": str(CONFIGS / "c2fmae_vit_b16_1600e.yaml"),
            "model": {"arch": "vit_tiny_cpu"},
            "data": {"img_size": 64},
        },
    )
    assert load_config(child).model.embed_dim == tiny["embed_dim"]
    shipped = load_config(CONFIGS / "c2fmae_tiny_cpu.yaml").model
    assert all(getattr(shipped, key) == value for key, value in tiny.items())
    with pytest.raises(ConfigError, match=r"^--set: unknown model.arch 'vit_tiny'; known: vit_base_patch16"):
        load_config(None, ["model.arch=vit_tiny"])


def test_a_timm_name_is_only_claimed_when_timm_has_those_sizes():
    assert load_config().model.timm_model == "vit_base_patch16_224"  # found from the sizes
    assert load_config(None, ["model.embed_dim=64"]).model.timm_model is None
    with pytest.raises(
        ConfigError,
        match=r"^--set: model: timm_model 'vit_base_patch16_224' does not match "
        r"this encoder: embed_dim 64 \(timm: 768\)",
    ):
        load_config(None, ["model.embed_dim=64", "model.timm_model=vit_base_patch16_224"])
    with pytest.raises(ConfigError, match=r"timm_model 'vit_tiny_patch16_224' does not match.*patch_size 8"):
        load_config(None, ["model.arch=vit_tiny_cpu", "model.timm_model=vit_tiny_patch16_224", "data.img_size=64"])
    with pytest.raises(ConfigError, match="is not one of"):
        load_config(None, ["model.timm_model=vit_huge"])
    claims = {
        name: load_config(None, [f"model.arch={name}", f"data.img_size={p['img_size']}"]).model.timm_model
        for name, p in ARCH_PRESETS.items()
    }
    assert claims == {
        "vit_base_patch16": "vit_base_patch16_224",
        "vit_large_patch16": "vit_large_patch16_224",
        "vit_tiny_cpu": None,
    }
    assert load_config(CONFIGS / "c2fmae_tiny_cpu.yaml").model.timm_model is None


def test_an_encoder_without_a_timm_name_exports_vision_transformer_arguments():
    cfg = load_config(CONFIGS / "c2fmae_tiny_cpu.yaml")
    model = build_model(cfg.model, num_classes=3)
    spec = model.timm_spec()
    assert spec["model"] is None
    vit = build_timm_vit(None, {**spec["kwargs"], "num_classes": 0})
    vit.load_state_dict(model.encoder_state_dict(), strict=True)
    assert vit.patch_embed.patch_size == (8, 8) and vit.embed_dim == 64


def _train_error(capsys, tmp_path, *argv) -> str:
    args = ["--data", tmp_path / "none", "--images", tmp_path, "--out", tmp_path / "run", *argv]
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("c2f-train: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()
    return err


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/stdin"])
def test_cli_refuses_device_configs_and_bases_at_once(capsys, tmp_path, device):
    assert f"{device}: config is not a regular file" in _train_error(capsys, tmp_path, "--config", device)
    config = _write(tmp_path / "c.yaml", {"base": device})
    assert f"{device}: config is not a regular file" in _train_error(capsys, tmp_path, "--config", config)


def test_cli_refuses_billion_laughs_and_echoes_no_secret(capsys, tmp_path):
    laughs = tmp_path / "laughs.yaml"
    laughs.write_text(BILLION_LAUGHS)
    assert "expands to more than" in _train_error(capsys, tmp_path, "--config", laughs)
    (tmp_path / "shadow").write_text(SECRET + "\n")
    config = _write(tmp_path / "c.yaml", {"base": str(tmp_path / "shadow")})
    err = _train_error(capsys, tmp_path, "--config", config)
    assert "shadow: a key that is no config name" in err and "s3cr3t" not in err


@pytest.mark.parametrize(
    "setting, needle",
    [
        ("data.num_workers=-1", "--set: data.num_workers: Input should be greater than or equal to 0, got -1"),
        ("model.patch_size=0", "--set: model.patch_size: Input should be greater than or equal to 1, got 0"),
        ("optim.blr_=1", "--set: unknown key 'optim.blr_'; did you mean 'optim.blr'?"),
    ],
)
def test_cli_out_of_range_settings_are_one_line_errors(capsys, tmp_path, setting, needle):
    config = _write(tmp_path / "c.yaml", {})
    assert needle in _train_error(capsys, tmp_path, "--config", config, "--set", setting)
