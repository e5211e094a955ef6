"""A label job's identity: what a rerun must match to resume a store (settings, input list, models)."""

from __future__ import annotations

from pathlib import Path

from datasets_spec import StoreError, open_store
from datasets_spec.decode import MAX_PIXELS

from .backends.base import model_reference
from .config import RUN_ONLY, LabelConfig
from .errors import LabelingError
from .sources import ImageList


def job_identity(cfg: LabelConfig, image_list: ImageList) -> dict:
    """What a rerun must match: settings, the input list, and the contents of local model files."""
    identity = cfg.identity()
    for role in ("semantic", "instance"):
        params = (identity[role] or {}).get("params", {})
        for key, value in params.items():
            is_file = isinstance(value, str) and Path(value).exists()
            # A local model is known by its contents, so moving it does not block a resume.
            params[key] = {"sha256": model_reference(value)["sha256"]} if is_file else _jsonable(value)
    identity["input"] = {"count": len(image_list.items), "sha256": image_list.sha256}
    return identity


def _jsonable(value):
    """A parameter as JSON: objects passed from Python (e.g. a built model) by their type name."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def check_resumable(output, job_identity: dict) -> None:
    """Refuse to resume `output` unless it was labeled with the same labels-deciding identity."""
    try:
        stored = open_store(output).provenance.get("job")
    except StoreError as exc:
        raise LabelingError(f"{output}: exists but cannot be resumed: {exc}") from None
    if isinstance(stored, dict):  # stores from before the limit was a setting had this ceiling
        stored = {"max_pixels": MAX_PIXELS, **stored}
    stored, job_identity = (labels_identity(x) for x in (stored, job_identity))
    if stored != job_identity:
        differs = sorted(k for k in job_identity if (stored or {}).get(k) != job_identity[k])
        raise LabelingError(
            f"{output}: was labeled with a different {', '.join(differs) or 'job'}; results are never mixed: "
            "rerun with the original inputs and settings, or write to a new output"
        )


def labels_identity(identity):
    """The part of a job identity that decides the labels (RUN_ONLY settings may change)."""
    if not isinstance(identity, dict):
        return identity
    return {k: v for k, v in identity.items() if k not in RUN_ONLY}
