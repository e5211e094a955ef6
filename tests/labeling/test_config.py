"""c2f-label's config: YAML <- flags <- --set, strict and typed; bad input is one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from labeling.cli import main
from labeling.config import BackendConfig, LabelConfig, load_config
from plumbing.errors import ConfigError

from ..plumbing.config_fixtures import BILLION_LAUGHS, SECRET

CONFIGS = Path(__file__).resolve().parents[2] / "labeling" / "configs"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _cli_error(capsys, tmp_path, *argv) -> str:
    """Run c2f-label on an empty folder; the config must be refused before anything starts."""
    code = main([str(tmp_path), "-o", str(tmp_path / "ds"), *map(str, argv)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("c2f-label: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "ds").exists()
    return err


def test_defaults_and_the_paper_config():
    assert load_config() == LabelConfig()
    cfg = load_config(CONFIGS / "label_paper.yaml")
    assert cfg.semantic == BackendConfig(
        "hf", {"model": "facebook/mask2former-swin-large-ade-semantic", "batch_size": 8}
    )
    assert cfg.instance.name == "grounded" and cfg.instance.params["max_boxes"] == 20
    assert (cfg.min_area, cfg.gpus_per_worker, cfg.cpus_per_worker) == (16, 1.0, 8.0)


def test_layers_yaml_then_flags_then_set(tmp_path):
    path = _write(tmp_path / "c.yaml", "semantic: {name: hf, model: A}\ninstance: classic\nmin_area: 9\n")
    cfg = load_config(path, ["semantic.model=B", "instance.k=2"], flags={"min_area": 3, "canvas": None})
    assert cfg.semantic == BackendConfig("hf", {"model": "B"}) and cfg.min_area == 3
    assert cfg.instance == BackendConfig("classic", {"k": 2}) and cfg.canvas == 256
    other = load_config(path, flags={"semantic": {"name": "classic"}})  # another backend: no foreign params
    assert other.semantic == BackendConfig("classic")
    assert load_config(path, flags={"instance": {"name": "none"}}).instance is None
    assert load_config(None, sets=["instance=null"]).instance is None
    assert load_config(None, sets=["semantic.clusters=7"]).semantic == BackendConfig("classic", {"clusters": 7})


def test_unknown_keys_suggest_the_closest_and_types_are_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key 'min_aera'; did you mean 'min_area'\?$"):
        load_config(_write(tmp_path / "c.yaml", "min_aera: 3\n"))
    with pytest.raises(ConfigError, match=r"^--set: canvas: Input should be a valid integer, got 1.5$"):
        load_config(sets=["canvas=1.5"])
    with pytest.raises(ConfigError, match="semantic: .*a semantic backend is required"):
        load_config(sets=["semantic=none"])


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--limit", "-1"], "--limit: limit: Input should be greater than or equal to 1, got -1"),
        (["--workers", "-5"], "--workers: workers: Input should be greater than or equal to 0, got -5"),
        (["--set", "min_area=-5"], "--set: min_area: Input should be greater than or equal to 0, got -5"),
        (["--canvas", "5000"], "--canvas: canvas: Input should be less than or equal to 4096, got 5000"),
        (["--set", "shard_sise=3"], "unknown key 'shard_sise'; did you mean 'shard_size'?"),
    ],
)
def test_out_of_range_settings_are_one_line_errors(capsys, tmp_path, argv, needle):
    assert needle in _cli_error(capsys, tmp_path, *argv)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/stdin"])
def test_device_configs_and_bases_are_refused_at_once(capsys, tmp_path, device):
    assert f"{device}: config is not a regular file" in _cli_error(capsys, tmp_path, "--config", device)
    config = _write(tmp_path / "c.yaml", f"base: {device}\n")
    assert f"{device}: config is not a regular file" in _cli_error(capsys, tmp_path, "--config", config)


def test_billion_laughs_and_secrets_through_the_cli(capsys, tmp_path):
    laughs = _write(tmp_path / "laughs.yaml", BILLION_LAUGHS)
    assert "expands to more than" in _cli_error(capsys, tmp_path, "--config", laughs)
    shadow = _write(tmp_path / "shadow", SECRET + "\n")
    config = _write(tmp_path / "c.yaml", f"base: {shadow}\n")
    err = _cli_error(capsys, tmp_path, "--config", config)
    assert "shadow: a key that is no config name" in err and "s3cr3t" not in err
