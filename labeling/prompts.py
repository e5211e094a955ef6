"""Text prompts per image, for instance backends that need them (`grounded`).

An image's prompts are the union, in this order, of
1. its ImageNet class name (ImageNet roots);
2. the second, tab-separated column of its line in a list file: phrases separated by ";",
   e.g. `photos/a.jpg<TAB>tabby cat; sofa`;
3. its entry in a `--prompts FILE`: a JSON object from an image key, a folder (ending in "/",
   relative to the list's root) or "*" (every image) to a phrase or a list of phrases, e.g.
   `{"birds/": ["bird"], "birds/heron.jpg": ["heron", "water"], "*": "animal"}`. The most specific
   entry applies: the exact key, else the longest matching folder, else "*";
4. the backend's `extra_prompts` (added to every image by the backend).
Phrases are cleaned (whitespace collapsed, "." — Grounding DINO's separator — replaced by a space,
empty ones and case-insensitive repeats dropped). A job with a prompt-using backend refuses, before
it starts, any image left without a prompt: it would get an empty instance map silently.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

from .errors import LabelingError

log = logging.getLogger(__name__)

LIST_SEPARATOR = ";"
EVERY_IMAGE = "*"


def clean_phrases(phrases) -> list[str]:
    """Phrases without "." (it would split a phrase), blanks or repeats (case-insensitive), in order."""
    seen, out = set(), []
    for phrase in phrases:
        clean = " ".join(str(phrase).replace(".", " ").split())
        if clean and clean.lower() not in seen:
            seen.add(clean.lower())
            out.append(clean)
    return out


def split_column(column: str) -> tuple[str, ...]:
    """A list file's prompt column "tabby cat; sofa" → ("tabby cat", "sofa")."""
    return tuple(clean_phrases(column.split(LIST_SEPARATOR)))


def read_prompt_file(path: str | Path) -> dict[str, tuple[str, ...]]:
    """The JSON prompt file at `path` → {key | folder/ | "*": phrases}; LabelingError on bad input."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LabelingError(f"{path}: cannot read prompts ({exc})") from None
    if not isinstance(data, dict):
        raise LabelingError(f"{path}: prompts must be a JSON object of image key or folder/ → phrase(s)")
    table = {}
    for key, value in data.items():
        phrases = [value] if isinstance(value, str) else value
        if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
            raise LabelingError(f"{path}: prompts for {key!r} must be a string or a list of strings")
        table[key] = tuple(clean_phrases(phrases))
    return table


def apply_prompt_file(image_list, path: str | Path | None):
    """image_list with each item's prompts extended by its most specific entry of the prompt file."""
    if path is None:
        return image_list
    table = read_prompt_file(path)
    folders = sorted((k for k in table if k.endswith("/")), key=len, reverse=True)
    used, prompts = set(), []
    for item in image_list.items:
        entry = _match(item.key, table, folders)
        if entry is not None:
            used.add(entry)
        prompts.append(item.prompts if entry is None else tuple(clean_phrases([*item.prompts, *table[entry]])))
    unused = sorted(set(table) - used)
    if unused:
        log.warning("%s: %d entries match no image (e.g. %r)", path, len(unused), unused[0])
    return replace(image_list, items=image_list.items.with_prompts(prompts))


def _match(key: str, table: dict, folders: list[str]) -> str | None:
    if key in table:
        return key
    return next((f for f in folders if key.startswith(f)), EVERY_IMAGE if EVERY_IMAGE in table else None)


def check_prompts(image_list, backend: str, extra_prompts) -> None:
    """LabelingError unless every image has a prompt (class name, own prompts or extra_prompts)."""
    if clean_phrases(extra_prompts or ()):
        return
    missing = [item.key for item in image_list.items if not item.class_prompt and not item.prompts]
    if missing:
        raise LabelingError(
            f"{image_list.root}: {len(missing)} of {len(image_list.items)} images have no text prompt for the "
            f"{backend} backend (first: {missing[0]}); give prompts in a tab-separated second column of the list "
            f"file, with --prompts FILE, or as instance.extra_prompts"
        )
