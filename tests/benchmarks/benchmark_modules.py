"""The scripts of benchmarks/ (a plain folder of scripts, not an installed package) as modules."""

import importlib
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def benchmark_module(name: str) -> ModuleType:
    """benchmarks/<name>.py as a module (the checkout joins sys.path if it is not there yet)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(f"benchmarks.{name}")
