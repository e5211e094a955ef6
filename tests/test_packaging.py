"""How c2fmae installs: ranges in pyproject.toml (a cluster image keeps its own torch and Ray), the
exact tested set in constraints.txt, and this environment installed from that set."""

import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def _locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, pinned = line.partition("==")
            assert sep, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = pinned.strip()
    return pins


def test_dependencies_are_ranges_not_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = [str(r) for r in map(Requirement, project["dependencies"]) if any(s.operator == "==" for s in r.specifier)]
    assert pinned == []


def test_the_lock_pins_every_dependency_inside_its_range():
    locked = _locked()
    for req in _declared():
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is not in constraints.txt"
        assert req.specifier.contains(locked[name], prereleases=True), f"{req.name}=={locked[name]} outside {req}"


def test_this_environment_is_the_locked_set():
    locked = _locked()
    for name in ("torch", "torchvision", "ray", "zarr", "tensorstore", "transformers", "timm", "numpy"):
        assert version(name) == locked[name], name


def test_the_wheel_carries_the_packaged_configs_and_finds_them_by_name(tmp_path):
    """`pip install c2fmae` then `--config label_paper`: no checkout, no configs/ folder or class table around."""
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels)]
    source = tmp_path / "source"  # a copy: an in-tree build would reuse a stale build/ folder
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "*_out"))
    subprocess.run([*build, str(source)], check=True, cwd=tmp_path, capture_output=True)
    with zipfile.ZipFile(next(wheels.glob("c2fmae-*.whl"))) as wheel:
        wheel.extractall(tmp_path / "site")
        shipped = {name for name in wheel.namelist() if name.endswith((".yaml", ".tsv"))}
    packaged = {
        f"{app}/configs/{p.name}" for app in ("labeling", "training") for p in (ROOT / app / "configs").glob("*.yaml")
    } | {"datasets_spec/imagenet_classes.tsv"}
    assert shipped == packaged
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import labeling.config as l, training.config as t; "
        "assert l.__file__.startswith(sys.argv[1]), l.__file__; "
        "from datasets_spec.imagenet import imagenet_wnids; "
        "print(l.load_config('label_paper').instance.name, t.load_config('c2fmae_tiny_cpu').model.mode, "
        "imagenet_wnids()[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "site")], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.stdout.split() == ["grounded", "c2f", "n01440764"], out.stderr
