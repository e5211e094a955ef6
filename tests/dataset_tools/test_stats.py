import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from dataset_tools._stats_plot import DPI, figure_size, stats_figure
from dataset_tools.cli import main
from dataset_tools.stats import compute_stats
from datasets_spec import ImageResult, create_store, open_store, write_shard
from datasets_spec.geometry import fit
from datasets_spec.reader import Store
from datasets_spec.records import encode_rle

from ..datasets_spec.store_fixtures import LABEL_SPACE, make_store


def _expected(results, canvas):
    """Class pixel / image counts and coverage straight from the results written."""
    pixels, images, valid, labelled, inst_px = np.zeros(5, np.int64), np.zeros(5, np.int64), 0, 0, 0
    for r in results:
        if r.error:
            continue
        h, w = fit(*r.orig_hw, canvas)
        sem, inst = r.semantic[:h, :w], r.instance[:h, :w]
        counts = np.bincount(sem[sem != 65535], minlength=5)
        pixels, images = pixels + counts, images + (counts > 0)
        valid, labelled, inst_px = valid + h * w, labelled + (sem != 65535).sum(), inst_px + (inst > 0).sum()
    return pixels, images, labelled / valid, inst_px / valid


def test_stats_match_the_written_masks_and_records(tmp_path):
    _, _, results = make_store(tmp_path / "ds", n=20, canvas=32, shard_size=8)
    st = compute_stats(open_store(tmp_path / "ds"), progress=False)
    pixels, images, sem_cov, inst_cov = _expected(results, 32)
    assert st["class_pixel_counts"] == pixels.tolist()
    assert st["class_image_counts"] == images.tolist()
    assert st["coverage"]["semantic"] == pytest.approx(sem_cov, abs=1e-6)
    assert st["coverage"]["instance"] == pytest.approx(inst_cov, abs=1e-6)
    # Synthetic instances carry the class of their pixels, so the maps agree everywhere.
    assert st["instance_semantic_agreement"] == 1.0
    records = [rec for r in results if not r.error for rec in r.records]
    per_image = [len(r.records) for r in results if not r.error]
    assert st["instances"] == len(records) == sum(st["instance_area"]["relative_histogram"])
    assert st["instances_per_image"]["histogram"][:5] == np.bincount(per_image, minlength=5)[:5].tolist()
    assert st["class_instance_counts"] == np.bincount([rec["semantic"] for rec in records], minlength=5).tolist()
    assert sum(st["instance_area"]["coco_sizes"].values()) == len(records)
    assert st["images"] == {"total": 20, "done": 16, "failed": 4, "pending": 0}
    assert st["failures"] == {"truncated image file": 4}


def test_disagreeing_instance_class_lowers_agreement(tmp_path):
    canvas = 16
    create_store(tmp_path / "ds", ["a", "b"], [0, 0], label_space=LABEL_SPACE, canvas=canvas, shard_size=2)
    sem = np.zeros((canvas, canvas), np.uint16)
    sem[:, 8:] = 1  # left half class 0, right half class 1
    inst = np.zeros((canvas, canvas), np.uint16)
    inst[:4, :12] = 1  # 32 pixels of class 0, 16 of class 1
    rec = {
        "id": 1,
        "score": 0.5,
        "box": [0, 0, 12, 4],
        "area": 48,
        "semantic": 0,
        "source": "t",
        "prompt": None,
        "rle": encode_rle(inst == 1),
    }
    write_shard(tmp_path / "ds", 0, [ImageResult(sem, inst, (canvas, canvas), [rec]), ImageResult.failed("decode: x")])
    st = compute_stats(open_store(tmp_path / "ds"), progress=False)
    assert st["instance_semantic_agreement"] == pytest.approx(32 / 48)
    assert st["class_pixel_counts"] == [128, 128, 0, 0, 0]
    assert st["failures"] == {"decode": 1}


def test_unmarked_shards_are_left_out_and_never_read(tmp_path, monkeypatch):
    _, _, results = make_store(tmp_path / "ds", n=20, canvas=32, shard_size=8)
    (tmp_path / "ds" / "markers" / "shard-000001.json").unlink()
    reads, read_masks = [], Store.read_masks
    monkeypatch.setattr(Store, "read_masks", lambda self, idx: reads.append(list(idx)[0]) or read_masks(self, idx))
    st = compute_stats(open_store(tmp_path / "ds"), progress=False)
    assert sorted(reads) == [0, 16]  # the first image of each done shard: one read per shard, none of shard 1
    pixels, _, _, _ = _expected(results[:8] + results[16:], 32)
    assert st["class_pixel_counts"] == pixels.tolist()
    assert st["images"]["pending"] == 8


def test_stats_cli_json_and_dashboard(tmp_path, capsys):
    _, _, results = make_store(tmp_path / "ds", n=20, canvas=32, shard_size=8)
    png = tmp_path / "plots" / "stats.png"
    assert main(["stats", str(tmp_path / "ds"), "--json", "--quiet", "--plot", str(png)]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["images"]["done"] == 16
    assert sum(st["instances_per_image"]["histogram"]) == 16 and len(st["instance_area"]["relative_histogram"]) > 0
    width, height = figure_size(st)
    with Image.open(png) as img:
        assert img.format == "PNG" and img.size == (round(width * DPI), round(height * DPI))
        # The bars are drawn in their colour: the picture is not blank.
        assert (np.asarray(img.convert("RGB")) == (60, 110, 180)).all(axis=-1).sum() > 1000
    assert main(["stats", str(tmp_path / "ds"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "agreement  100.0%" in out
    per_image = np.bincount([len(r.records) for r in results if not r.error])
    histogram = ", ".join(f"{k} ×{c}" for k, c in enumerate(per_image) if c)
    assert f"per image  mean {st['instances_per_image']['mean']:.2f}; images with k instances: {histogram}\n" in out


def _stats_of(num_classes: int, seen: int) -> dict:
    """A stats dict with `num_classes` classes of which the first `seen` have pixels, images and instances."""
    counts = [10 * (c + 1) if c < seen else 0 for c in range(num_classes)]
    return {
        "path": "/data/store",
        "images": {"total": 1000, "done": 990, "failed": 10, "pending": 0},
        "label_space": {str(c): f"class-{c:03d}" for c in range(num_classes)},
        "class_pixel_counts": counts,
        "class_image_counts": counts,
        "class_instance_counts": counts,
        "unclassed_instances": 0,
        "coverage": {"semantic": 0.9, "instance": 0.4},
        "instance_semantic_agreement": 0.95,
        "instances": 2000,
        "instances_per_image": {"histogram": [0, 5, 3] + [0] * 47 + [2], "last_bin_means_at_least": 50, "mean": 2.0},
        "instance_area": {
            "relative_log10_edges": np.linspace(-6, 0, 25).tolist(),
            "relative_histogram": [1] * 24,
            "coco_sizes": {"small": 10, "medium": 8, "large": 6},
        },
        "failures": {"decode": 7, "truncated image file": 3},
    }


def test_dashboard_names_every_class_on_log_axes_and_grows_with_them():
    st = _stats_of(150, seen=120)
    fig = stats_figure(st)
    axes = {ax.get_label(): ax for ax in fig.get_axes()}
    names = {t.get_text() for t in axes["class_pixels"].get_yticklabels()}
    assert names == {f"class-{c:03d} ({c})" for c in range(150)}  # every class, seen or not
    for label in ("class_pixels", "class_images", "class_instances"):
        assert axes[label].get_xscale() == "log"
    # Sorted by pixel count: the class with the most pixels on top (the y axis runs downwards).
    assert axes["class_pixels"].get_yticklabels()[0].get_text() == "class-119 (119)"
    assert axes["instance_area"].get_xscale() == "log"
    ticks = [t.get_text() for t in axes["instances_per_image"].get_xticklabels()]
    assert ticks[0] == "0" and ticks[-1] == "≥50"  # the open last bin is named so
    failures = {t.get_text() for t in axes["failures"].get_yticklabels()}
    assert failures == {"decode", "truncated image file"}
    assert fig.get_size_inches()[1] > stats_figure(_stats_of(5, seen=5)).get_size_inches()[1] + 20


def test_stats_errors_are_one_line(tmp_path, capsys):
    assert main(["stats", str(tmp_path / "nope"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such dataset directory" in err
    make_store(tmp_path / "ds", n=8, canvas=32, shard_size=8)
    (tmp_path / "file").write_text("")
    assert main(["stats", str(tmp_path / "ds"), "--quiet", "--plot", str(tmp_path / "file" / "s.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "file") in err


def _big_store(path, n, canvas, shard_size):
    """A store of n images whose masks compress well (cheap to write) but decode to n·S²·4 bytes."""
    create_store(
        path, [f"k{i}" for i in range(n)], [0] * n, label_space=LABEL_SPACE, canvas=canvas, shard_size=shard_size
    )
    sem = (np.arange(canvas)[:, None] * 5 // canvas).repeat(canvas, 1).astype(np.uint16)
    inst = (sem == 2).astype(np.uint16)
    rec = {
        "id": 1,
        "score": 1.0,
        "box": [0, 0, canvas, canvas],
        "area": int(inst.sum()),
        "semantic": 2,
        "source": "t",
        "prompt": None,
        "rle": encode_rle(inst == 1),
    }
    result = ImageResult(sem, inst, (canvas, canvas), [rec])
    for shard in range(n // shard_size):
        write_shard(path, shard, [result] * shard_size)


_PEAK_RSS = """
import json, resource, sys
import dask
dask.config.set(num_workers=2)  # memory is bounded by threads × one shard; fix the threads
from datasets_spec import open_store
from dataset_tools.stats import compute_stats
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
st = compute_stats(open_store(sys.argv[1]), progress=False)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
grew = (after - before) * 1024
print(json.dumps({"grew": grew, "done": st["images"]["done"], "pixels": sum(st["class_pixel_counts"])}))
"""


@pytest.mark.slow
def test_stats_memory_stays_far_below_the_store_size(tmp_path):
    n, canvas, k = 4096, 256, 32
    _big_store(tmp_path / "ds", n, canvas, k)
    decoded = n * canvas * canvas * 4  # semantic + instance as uint16: 1 GiB
    # Peak resident memory of a fresh process (everything: NumPy, tensorstore, Dask), before vs after.
    run = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, str(tmp_path / "ds")], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout)
    assert got["done"] == n and got["pixels"] == n * canvas * canvas
    assert got["grew"] < decoded / 4, f"peak RSS grew by {got['grew'] >> 20} MiB for a store of {decoded >> 20} MiB"


def test_stats_on_a_distributed_scheduler_equal_local(tmp_path):
    import distributed

    make_store(tmp_path / "ds", n=20, canvas=32, shard_size=8)
    local = compute_stats(open_store(tmp_path / "ds"), progress=False)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, host="127.0.0.1", protocol="tcp", dashboard_address=None
    ) as cluster:
        remote = compute_stats(open_store(tmp_path / "ds"), scheduler=cluster.scheduler_address, progress=False)
    assert remote == local


def test_dashboard_of_a_store_with_nothing_labeled_draws_without_warnings(tmp_path):
    st = _stats_of(5, seen=0)
    st["coverage"], st["instance_semantic_agreement"], st["failures"] = {"semantic": None, "instance": None}, None, {}
    st["instances_per_image"]["histogram"] = [0] * 51
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. matplotlib's "Data has no positive values" on a log axis
        fig = stats_figure(st)
        FigureCanvasAgg(fig).draw()
    coverage = next(ax for ax in fig.get_axes() if ax.get_label() == "coverage")
    assert [t.get_text() for t in coverage.texts] == ["n/a", "n/a", "n/a"]
