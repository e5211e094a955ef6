"""data.decode: gpu, run on the CPU (torchvision's decode_jpeg decodes there too): the same crop
boxes, flips and masks as data.decode: cpu, and RGB within a small tolerance of the CPU path's
(rgb_tolerance.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from torch.utils.data import default_collate

from datasets_spec import ImageResult, create_store, write_shard
from datasets_spec.decode import decode_crop, jpeg_crop
from datasets_spec.geometry import labels_to_canvas
from datasets_spec.records import encode_rle
from datasets_spec.schema import INSTANCE_NONE, SEMANTIC_IGNORE
from plumbing.errors import ConfigError
from training.cli import main
from training.config import load_config
from training.data import DataConfig, build_dataset, loader_kwargs
from training.data.gpu_decode import collate, crop_resize, decode_batch, decode_jpegs, require_cuda
from training.data.transforms import draw
from training.errors import TrainingError

from .data_fixtures import label_maps
from .engine_fixtures import train_argv, write_tiny_yaml
from .rgb_tolerance import RGB_MAX_DIFF, RGB_MEAN_DIFF, level_diff

# EXIF orientation → the PIL transpose that turns the oriented photo into the stored one
_STORE_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def photo(height: int, width: int) -> Image.Image:
    return Image.fromarray(data.astronaut()).resize((width, height), Image.BICUBIC)


def save_oriented(oriented: Image.Image, path, orientation: int, fmt: str = "JPEG") -> None:
    """Save `oriented` so that applying EXIF `orientation` to the file gives it back."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = oriented.transpose(_STORE_AS[orientation]) if orientation in _STORE_AS else oriented
    stored.save(path, fmt, quality=90, exif=exif.tobytes())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_gpu_path_cuts_the_cpu_paths_box_in_every_orientation(tmp_path, orientation):
    oriented_hw = (153, 205)
    path = tmp_path / f"o{orientation}.jpg"
    save_oriented(photo(*oriented_hw), path, orientation)
    box, size = (17, 41, 120, 90), 64
    crop = jpeg_crop(path, box, oriented_hw)
    pixels = decode_jpegs([torch.frombuffer(bytearray(crop.data), dtype=torch.uint8)], torch.device("cpu"))[0]
    ours = crop_resize(pixels, [*crop.box, crop.swap, crop.flip_x, crop.flip_y, False], size)
    cpu = torch.from_numpy(decode_crop(path, box, (size, size), oriented_hw, draft=False).copy()).permute(2, 0, 1)
    diff = (ours - cpu.float()).abs()
    assert diff.max() <= RGB_MAX_DIFF and diff.mean() <= RGB_MEAN_DIFF, (diff.max(), diff.mean())


def test_files_the_gpu_cannot_take_are_left_to_the_cpu(tmp_path):
    photo(40, 60).save(tmp_path / "a.png")
    photo(40, 60).convert("CMYK").save(tmp_path / "b.jpg")
    photo(40, 60).save(tmp_path / "c.jpg")
    box = (0, 0, 40, 60)
    assert jpeg_crop(tmp_path / "a.png", box, (40, 60)) is None
    assert jpeg_crop(tmp_path / "b.jpg", box, (40, 60)) is None
    assert jpeg_crop(tmp_path / "c.jpg", box, (40, 60), max_pixels=2399) is None  # needs a reduced decode
    assert jpeg_crop(tmp_path / "c.jpg", box, (40, 60)).box == box


@pytest.fixture(scope="module")
def mixed_store(tmp_path_factory):
    """A store of JPEGs in several EXIF orientations, a grey JPEG, a CMYK JPEG and a PNG, with
    blocky label maps, canvas 64."""
    root = tmp_path_factory.mktemp("mixed")
    files = [
        ("o1.jpg", 1, "RGB"),
        ("o6.jpg", 6, "RGB"),
        ("o3.jpg", 3, "RGB"),
        ("o8.jpg", 8, "RGB"),
        ("o5.jpg", 5, "RGB"),
        ("grey.jpg", 1, "L"),
        ("cmyk.jpg", 1, "CMYK"),
        ("plain.png", 1, "RGB"),
    ]
    sizes = [(90, 130), (120, 80), (77, 101), (100, 100), (64, 150), (96, 72), (80, 120), (110, 70)]
    keys = [name for name, _, _ in files]
    store = root / "store"
    create_store(
        store, keys, [0] * len(keys), canvas=64, shard_size=len(keys), label_space={c: f"class{c}" for c in range(6)}
    )
    rng, results = np.random.default_rng(0), []
    for (name, orientation, mode), (height, width) in zip(files, sizes):
        save_oriented(
            photo(height, width).convert(mode), root / name, orientation, "PNG" if name.endswith(".png") else "JPEG"
        )
        semantic, instance = label_maps(rng, height, width)
        records = [
            {
                "id": int(i),
                "score": 0.9,
                "box": [0, 0, 1, 1],
                "area": 1,
                "semantic": None,
                "source": "test",
                "prompt": None,
                "rle": encode_rle(instance == i),
            }
            for i in (1, 2)
        ]
        results.append(
            ImageResult(
                labels_to_canvas(semantic, 64, SEMANTIC_IGNORE),
                labels_to_canvas(instance, 64, INSTANCE_NONE),
                (height, width),
                records,
            )
        )
    write_shard(store, 0, results)
    return store, root


def test_gpu_mode_batches_equal_cpu_mode_batches(mixed_store):
    store, root = mixed_store
    common = {"img_size": 48, "num_workers": 0, "jpeg_draft": False, "scale": (0.1, 1.0)}
    cpu_ds = build_dataset(DataConfig(**common), store, root, seed=3)
    gpu_cfg = DataConfig(**common, decode="gpu")
    gpu_ds = build_dataset(gpu_cfg, store, root, seed=3)
    items = [(pos, epoch) for epoch in range(3) for pos in range(len(cpu_ds))]
    cpu = default_collate(cpu_ds.__getitems__(items))
    raw = collate(gpu_ds.__getitems__(items))
    assert raw["rgb_at"].tolist() == [i for i, (pos, _) in enumerate(items) if pos in (6, 7)]  # CMYK, PNG
    for i, (pos, epoch) in enumerate(items):  # the boxes and flips drawn are the CPU path's
        box, flip = draw(np.random.default_rng([3, epoch, pos]), cpu_ds.orig_hw[pos], gpu_cfg)
        crop = jpeg_crop(cpu_ds.image_path(pos), box, cpu_ds.orig_hw[pos])
        expected = [0] * 8 if crop is None else [*crop.box, crop.swap, crop.flip_x, crop.flip_y, flip]
        assert raw["crop"][i].tolist() == expected
    assert 0 < raw["crop"][:, 7].sum() < len(items) - 6  # both flipped and unflipped JPEG crops
    gpu = decode_batch(raw, torch.device("cpu"), gpu_cfg)
    for key in ("semantic", "instance", "index"):
        assert torch.equal(gpu[key], cpu[key]), key
    diff = level_diff(gpu["image"], cpu["image"], gpu_cfg.std)
    assert gpu["image"].shape == cpu["image"].shape == (len(items), 3, 48, 48)
    assert diff.max() <= RGB_MAX_DIFF and diff.mean() <= RGB_MEAN_DIFF, (diff.max(), diff.mean())
    assert level_diff(gpu["image"][raw["rgb_at"]], cpu["image"][raw["rgb_at"]], gpu_cfg.std).max() < 1e-3


def test_gpu_mode_loader_kwargs_collate_the_raw_batch(mixed_store):
    store, root = mixed_store
    cfg = DataConfig(img_size=32, num_workers=0, decode="gpu")
    loader = torch.utils.data.DataLoader(
        build_dataset(cfg, store, root, seed=0), batch_size=4, sampler=[(p, 0) for p in range(8)], **loader_kwargs(cfg)
    )
    batches = [decode_batch(b, torch.device("cpu"), cfg) for b in loader]
    assert [b["image"].shape for b in batches] == [(4, 3, 32, 32)] * 2
    assert torch.cat([b["index"] for b in batches]).tolist() == list(range(8))


def test_unknown_decode_mode_is_refused():
    with pytest.raises(ConfigError, match=r"^--set: data.decode: Input should be 'cpu' or 'gpu'.*got 'tpu'$"):
        load_config(None, ["data.decode=tpu"])


def test_gpu_decode_without_cuda_is_one_line_at_start(capsys, tiny_store, tmp_path):
    with pytest.raises(TrainingError, match="data.decode=gpu needs a CUDA device"):
        require_cuda(DataConfig(decode="gpu"), torch.device("cpu"))
    require_cuda(DataConfig(decode="cpu"), torch.device("cpu"))
    config = write_tiny_yaml(tmp_path / "tiny.yaml")
    code = main(
        [
            *train_argv(config, tiny_store.path, tiny_store.images, tmp_path / "run"),
            "--set",
            "data.decode=gpu",
            "--set",
            "engine.device=cpu",
        ]
    )
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "data.decode=gpu needs a CUDA device" in lines[0], lines
    assert not (tmp_path / "run" / "latest.pt").exists()


def test_a_gpu_mode_run_decodes_in_the_step(mixed_store, tmp_path, monkeypatch):
    """The engine's hook: with the CUDA check lifted, a CPU run in GPU mode trains on batches the
    step decoded (and pictures them), with losses close to a CPU-mode run's."""
    from training import step
    from training.data import gpu_decode
    from training.engine import train

    from .engine_fixtures import tiny_config

    store, root = mixed_store
    seen = []
    monkeypatch.setattr(gpu_decode, "require_cuda", lambda cfg, device: None)
    monkeypatch.setattr(step, "to_device", lambda batch, device: pytest.fail("to_device in GPU mode"))
    real = gpu_decode.decode_batch
    monkeypatch.setattr(gpu_decode, "decode_batch", lambda *a, **k: seen.append(1) or real(*a, **k))
    settings = ["optim.epochs=1", "engine.image_every=2", "data.jpeg_draft=false"]
    gpu = train(tiny_config(*settings, "data.decode=gpu"), store, root, tmp_path / "gpu")
    monkeypatch.undo()
    cpu = train(tiny_config(*settings), store, root, tmp_path / "cpu")
    assert len(seen) == gpu["steps_run"] == cpu["steps_run"] == 2
    assert (tmp_path / "gpu" / "images" / "step-0000002.png").is_file()
    assert gpu["loss"] == pytest.approx(cpu["loss"], rel=1e-2)


def test_a_jpeg_that_fails_to_decode_in_the_step_names_the_batchs_images(mixed_store):
    store, root = mixed_store
    cfg = DataConfig(img_size=32, num_workers=0, decode="gpu")
    raw = collate(build_dataset(cfg, store, root, seed=0).__getitems__([(0, 0), (1, 0)]))
    raw["jpeg"][raw["jpeg_end"][0] - 600 : raw["jpeg_end"][0]] = 0  # the first file's scan data zeroed
    raw["jpeg"][200:400] = 0xFF
    with pytest.raises(TrainingError, match=r"decoding the JPEGs of store images \[0, 1\] on cpu failed: "):
        decode_batch(raw, torch.device("cpu"), cfg)
