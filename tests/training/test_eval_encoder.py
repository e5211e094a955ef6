"""What `c2f-train eval --encoder` reads: timm's Hugging Face directory (DIR or local-dir:DIR),
the format-1 encoder.pth + encoder.json pair, and one-line errors for what is neither."""

from __future__ import annotations

import json

import pytest
import torch

from training.errors import TrainingError
from training.eval.config import EncoderConfig
from training.eval.encoder import load_encoder, read_spec

from .eval_fixtures import export_format1_encoder, export_tiny_encoder, tiny_encoder_model


def _features(path) -> torch.Tensor:
    spec = read_spec(path, EncoderConfig())
    image = torch.randn(2, 3, spec.img_size, spec.img_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return load_encoder(spec).eval().forward_features(image)


def test_an_export_directory_a_local_dir_name_and_a_format1_pair_give_the_same_encoder(tmp_path):
    directory = export_tiny_encoder(tmp_path / "encoder")
    legacy = export_format1_encoder(tmp_path / "encoder.pth")
    spec = read_spec(directory, EncoderConfig())
    assert spec.path == directory and spec.img_size == 32
    assert spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225)
    expected = tiny_encoder_model(0).eval()
    image = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(_features(directory), expected.forward_features(image))
    torch.testing.assert_close(_features(f"local-dir:{directory}"), _features(directory))
    torch.testing.assert_close(_features(legacy), _features(directory))


def test_a_directory_the_export_configured_is_overridden_by_the_eval_settings(tmp_path):
    directory = export_tiny_encoder(tmp_path / "encoder")
    spec = read_spec(directory, EncoderConfig(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)))
    assert spec.mean == spec.std == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("problem", ["no config.json", "no model.safetensors", "damaged weights", "bad config"])
def test_a_directory_that_is_not_an_export_is_one_line(tmp_path, problem):
    directory = export_tiny_encoder(tmp_path / "encoder")
    if problem == "no config.json":
        (directory / "config.json").unlink()
    elif problem == "no model.safetensors":
        (directory / "model.safetensors").unlink()
    elif problem == "damaged weights":
        (directory / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    else:
        config = json.loads((directory / "config.json").read_text())
        config["pretrained_cfg"]["mean"] = [0.5]
        (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(TrainingError) as caught:
        load_encoder(read_spec(directory, EncoderConfig()))
    message = str(caught.value)
    assert "\n" not in message and str(directory) in message
    expected = {
        "no config.json": "no config.json",
        "no model.safetensors": "no model.safetensors",
        "damaged weights": "not a loadable safetensors file",
        "bad config": "pretrained_cfg.mean must be 3 numbers",
    }[problem]
    assert expected in message
