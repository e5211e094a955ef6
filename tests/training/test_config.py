"""Typed, layered, strict config: defaults <- YAML (with base:) <- --set overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from training.config import TrainConfig, load_config, parse_overrides, save_config, to_dict, valid_keys
from training.errors import TrainingError
from training.masking import Curriculum

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


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
    with pytest.raises(TrainingError, match=r"unknown key 'optim.blr_' in .*typo.yaml; did you mean 'optim.blr'\?"):
        load_config(path)
    with pytest.raises(TrainingError, match=r"'engine.sed' in --set; did you mean 'engine.seed'"):
        load_config(None, ["engine.sed=1"])


def test_wrong_types_are_errors_naming_the_key():
    with pytest.raises(TrainingError, match="optim.batch_size.*integer"):
        load_config(None, ["optim.batch_size=1.5"])
    with pytest.raises(TrainingError, match="engine.amp.*one of"):
        load_config(None, ["engine.amp=fp8"])
    with pytest.raises(TrainingError, match="optim.betas"):
        load_config(None, ["optim.betas=[0.9]"])
    with pytest.raises(TrainingError, match="key=value"):
        parse_overrides(["optim.blr"])


def test_invalid_values_name_their_section():
    with pytest.raises(TrainingError, match="invalid config section optim: batch_size"):
        load_config(None, ["optim.batch_size=0"])
    with pytest.raises(TrainingError, match="section model: .*mode 'bogus'"):
        load_config(None, ["model.mode=bogus"])
    with pytest.raises(TrainingError, match="data.img_size .* must equal model.img_size"):
        load_config(None, ["data.img_size=64"])
    with pytest.raises(TrainingError, match="section data: data.num_workers must be >= 0.* got -1"):
        load_config(None, ["data.num_workers=-1"])
    for key in ("patch_size", "depth", "decoder_heads"):
        with pytest.raises(TrainingError, match=rf"section model: model.{key} must be >= 1, got 0"):
            load_config(None, [f"model.{key}=0"])


def test_yaml_1_1_exponents_and_nulls_parse_as_numbers():
    cfg = load_config(None, ["optim.blr=1e-4", "optim.clip_grad=3", "optim.min_lr=0"])
    assert cfg.optim.blr == 1e-4 and cfg.optim.clip_grad == 3.0 and isinstance(cfg.optim.min_lr, float)
    assert load_config(None, ["optim.clip_grad=null"]).optim.clip_grad is None


def test_base_loop_is_an_error(tmp_path):
    _write(tmp_path / "a.yaml", {"base": "b.yaml"})
    _write(tmp_path / "b.yaml", {"base": "a.yaml"})
    with pytest.raises(TrainingError, match="loops"):
        load_config(tmp_path / "a.yaml")


def test_saved_config_loads_back_identically(tmp_path):
    cfg = load_config(None, ["optim.blr=2e-4", "engine.seed=5"])
    save_config(cfg, tmp_path / "config.yaml")
    assert to_dict(load_config(tmp_path / "config.yaml")) == to_dict(cfg)


TRAIN_CONFIGS = ("c2fmae_vit_b16_1600e.yaml", "c2fmae_tiny_cpu.yaml", "mae_vit_b16.yaml",
                 "parallel_vit_b16.yaml", "mae_tiny_cpu.yaml", "parallel_tiny_cpu.yaml",
                 "c2fmae_nocurriculum_vit_b16.yaml", "c2fmae_nocurriculum_tiny_cpu.yaml")


def test_every_shipped_training_config_loads():
    for name in TRAIN_CONFIGS:
        assert isinstance(load_config(CONFIGS / name), TrainConfig), name
        assert (CONFIGS / name).read_text().startswith("#"), f"{name}: first line must say the command"


def test_valid_keys_cover_all_sections():
    keys = valid_keys(TrainConfig)
    assert {"optim.blr", "engine.seed", "model", "data", "curriculum"} <= set(keys)


def test_ablation_configs_differ_from_c2fmae_in_the_model_mode():
    mae_conventions = {"warmup_from_zero": True, "decay_rule": "mae"}  # MAE's code, only for mae
    for size in ("vit_b16", "tiny_cpu"):
        base = to_dict(load_config(CONFIGS / ("c2fmae_vit_b16_1600e.yaml" if size == "vit_b16"
                                              else "c2fmae_tiny_cpu.yaml")))
        for mode in ("mae", "parallel"):
            other = to_dict(load_config(CONFIGS / f"{mode}_{size}.yaml"))
            assert other["model"]["mode"] == mode
            if mode == "mae":
                assert {k: other["optim"][k] for k in mae_conventions} == mae_conventions
                other["optim"].update({k: base["optim"][k] for k in mae_conventions})
            assert {k: v for k, v in other.items() if k not in ("model", "curriculum")} == \
                {k: v for k, v in base.items() if k not in ("model", "curriculum")}
    tiny = load_config(CONFIGS / "c2fmae_tiny_cpu.yaml")
    assert tiny.engine.log_every == 1 and tiny.engine.device == "cpu"


def test_nocurriculum_configs_are_c2fmae_with_random_masking_only():
    for base_name, name in (("c2fmae_vit_b16_1600e.yaml", "c2fmae_nocurriculum_vit_b16.yaml"),
                            ("c2fmae_tiny_cpu.yaml", "c2fmae_nocurriculum_tiny_cpu.yaml")):
        base, cfg = load_config(CONFIGS / base_name), load_config(CONFIGS / name)
        assert {k: v for k, v in to_dict(cfg).items() if k != "curriculum"} == \
            {k: v for k, v in to_dict(base).items() if k != "curriculum"}
        assert cfg.model.mode == "c2f"
        assert all(Curriculum(cfg.curriculum).weights(t / 10) == (0.0, 0.0, 1.0) for t in range(11))
