"""Backend registry (timm style): `register_backend(kind, name)` decorates a class,
`create_backend(kind, name, **params)` builds one.

kind is "semantic" or "instance". The built-in backends live in modules imported on first use, so
listing or building the classic backend never imports torch or transformers.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

from plumbing.errors import did_you_mean

from ..errors import LabelingError
from .base import InstanceBackend, Instances, SemanticBackend

KINDS = ("semantic", "instance")

_BUILTIN = {  # (kind, name) → module that registers it
    ("semantic", "classic"): "labeling.backends.classic",
    ("instance", "classic"): "labeling.backends.classic",
    ("semantic", "hf"): "labeling.backends.semantic_hf",
    ("instance", "grounded"): "labeling.backends.grounded",
    ("instance", "sam-amg"): "labeling.backends.sam_amg",
}
_PROMPTED = {("instance", "grounded")}  # built-ins with uses_prompts = True (known without importing them)
_REGISTRY: dict[tuple[str, str], Callable] = {}


def register_backend(kind: str, name: str) -> Callable:
    """Class decorator: make `cls` buildable as create_backend(kind, name, **params)."""
    if kind not in KINDS:
        raise ValueError(f"backend kind must be one of {KINDS}, got {kind!r}")

    def register(cls):
        cls.name = name
        _REGISTRY[(kind, name)] = cls
        return cls

    return register


def backend_names(kind: str) -> list[str]:
    """Valid names for one kind, built-in and registered, sorted."""
    return sorted({n for k, n in (*_BUILTIN, *_REGISTRY) if k == kind})


def require_backend(kind: str, name: str) -> None:
    """LabelingError naming the valid choices unless `name` is a backend of `kind` (imports nothing)."""
    if kind not in KINDS:
        raise LabelingError(f"unknown backend kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    if name not in backend_names(kind):
        raise LabelingError(f"unknown {kind} backend {name!r}; valid names: {', '.join(backend_names(kind))}")


def uses_prompts(kind: str, name: str) -> bool:
    """Whether backend `name` finds nothing without text prompts (imports nothing for built-ins)."""
    if (kind, name) in _REGISTRY:
        return bool(getattr(_REGISTRY[(kind, name)], "uses_prompts", False))
    return (kind, name) in _PROMPTED


def backend_class(kind: str, name: str) -> type:
    """The class of backend `name` of `kind` (imports a built-in's module); LabelingError names
    the valid choices."""
    require_backend(kind, name)
    if (kind, name) not in _REGISTRY:
        importlib.import_module(_BUILTIN[(kind, name)])
    return _REGISTRY[(kind, name)]


def check_parameters(kind: str, name: str, params: dict) -> None:
    """LabelingError unless backend `name` of `kind` takes `params` as its constructor says: an
    unknown one comes with the closest valid name (`semantic: {nmae: hf}` -> did you mean 'name'?)."""
    signature = inspect.signature(backend_class(kind, name))
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    valid = ["name", *signature.parameters]  # `name` picks the backend in a config mapping
    for key in params:
        if key not in signature.parameters and not takes_any:
            hint = did_you_mean(key, valid, "valid keys")
            bad = f"bad parameters for {kind} backend {name!r}"
            raise LabelingError(f"{kind}.{key}: {bad}: no parameter {key!r}; {hint}")
    try:
        signature.bind(**params)
    except TypeError as err:
        raise LabelingError(f"bad parameters for {kind} backend {name!r}: {err}") from None


def create_backend(kind: str, name: str, **params) -> SemanticBackend | InstanceBackend:
    """Build backend `name` of `kind` with its parameters; LabelingError names the valid choices."""
    check_parameters(kind, name, params)
    return backend_class(kind, name)(**params)


__all__ = [
    "KINDS",
    "InstanceBackend",
    "Instances",
    "SemanticBackend",
    "backend_class",
    "backend_names",
    "check_parameters",
    "create_backend",
    "register_backend",
    "require_backend",
    "uses_prompts",
]
