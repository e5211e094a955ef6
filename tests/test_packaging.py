"""How c2fmae installs: ranges in pyproject.toml (a cluster image keeps its own torch and Ray), the
exact tested set in constraints.txt, and this environment installed from that set."""

import tomllib
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
