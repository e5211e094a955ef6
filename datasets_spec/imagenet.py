"""The ImageNet-1K label space of the store's `label` array: class index = position in the standard
sorted-wnid order (0 = n01440764 "tench"), -1 unknown.

`imagenet_classes.tsv` (committed, shipped in the wheel) holds one line per class: index, wnid and
its WordNet lemmas ("tench, Tinca tinca"). It was built by `python -m datasets_spec.imagenet
TIMM_INFO_DIR` from the `imagenet_synsets.txt` and `imagenet_synset_to_lemma.txt` that timm ships,
so that readers of the contract need neither timm nor torch.
"""

from __future__ import annotations

import sys
from functools import cache
from importlib import resources
from pathlib import Path

TABLE_FILE = "imagenet_classes.tsv"


@cache
def imagenet_table() -> tuple[tuple[int, str, str], ...]:
    """The 1000 rows (index, wnid, lemmas), in index order."""
    text = resources.files(__package__).joinpath(TABLE_FILE).read_text(encoding="utf-8")
    rows = []
    for line in text.splitlines():
        index, wnid, name = line.split("\t")
        rows.append((int(index), wnid, name))
    return tuple(rows)


def imagenet_wnids() -> list[str]:
    """The 1000 wnids ("n01440764", ...), list index = class index."""
    return [wnid for _, wnid, _ in imagenet_table()]


def imagenet_names() -> list[str]:
    """The 1000 classes' WordNet lemmas ("tench, Tinca tinca", ...), list index = class index."""
    return [name for _, _, name in imagenet_table()]


def build_table(synsets: Path, lemmas: Path) -> list[tuple[int, str, str]]:
    """(index, wnid, lemmas) rows from timm's imagenet_synsets.txt and imagenet_synset_to_lemma.txt."""
    wnids = [w.strip() for w in synsets.read_text(encoding="utf-8").splitlines() if w.strip()]
    names = dict(line.split("\t", 1) for line in lemmas.read_text(encoding="utf-8").splitlines() if line)
    return [(i, w, names[w].strip()) for i, w in enumerate(wnids)]


def format_table(rows: list[tuple[int, str, str]]) -> str:
    return "".join(f"{i}\t{w}\t{n}\n" for i, w, n in rows)


if __name__ == "__main__":  # regenerate the committed table: python -m datasets_spec.imagenet DIR
    info = Path(sys.argv[1])
    table = build_table(info / "imagenet_synsets.txt", info / "imagenet_synset_to_lemma.txt")
    (Path(__file__).parent / TABLE_FILE).write_text(format_table(table), encoding="utf-8")
