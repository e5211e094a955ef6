"""The ImageNet-1K classes (index, wnid, name) with the text prompts derived from them.

The class table is the store contract's (`datasets_spec.imagenet`): index = the store's `label`,
name = the WordNet lemmas of the class, in the standard sorted-wnid order.

Prompt = first lemma with underscores as spaces. First lemmas that collide (two "crane"s, two
"maillot"s, "Cardigan"/"cardigan") are found programmatically and must each have an entry in
`_DISAMBIGUATED`; a few other first lemmas whose everyday meaning differs from the class ("kite" the
bird, "rule" the ruler, "washer" the machine) are rewritten there too.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cache

from datasets_spec.imagenet import imagenet_table

from .errors import LabelingError

_DISAMBIGUATED = {
    # first lemmas shared by two classes
    "n02012849": "crane bird",
    "n03126707": "construction crane",
    "n02113186": "Cardigan Welsh corgi",
    "n02963159": "cardigan sweater",
    "n03710637": "dance leotard",
    "n03710721": "one-piece swimsuit",
    # first lemmas whose common reading is another object
    "n01608432": "kite bird",
    "n02879718": "archery bow",
    "n03584829": "clothes iron",
    "n03673027": "ocean liner",
    "n03782006": "computer monitor",
    "n03832673": "notebook computer",
    "n03929660": "guitar pick",
    "n04118776": "ruler",
    "n04141975": "weighing scale",
    "n04152593": "CRT screen",
    "n04243546": "slot machine",
    "n04372370": "electric switch",
    "n04399382": "teddy bear",
    "n04517823": "vacuum cleaner",
    "n04554684": "washing machine",
    "n04592741": "aircraft wing",
}


@dataclass(frozen=True)
class ImageNetClass:
    index: int
    wnid: str
    name: str  # all WordNet lemmas, comma separated, as in the table
    prompt: str  # cleaned, unique text used to prompt open-vocabulary detectors


def first_lemma(name: str) -> str:
    """ "maillot, tank_suit" → "maillot"; underscores become spaces."""
    return name.split(",")[0].strip().replace("_", " ")


def duplicate_first_lemmas(rows: list[tuple[int, str, str]]) -> dict[str, list[str]]:
    """First lemmas (case-insensitive) shared by several rows → their wnids."""
    groups: dict[str, list[str]] = defaultdict(list)
    for _, wnid, name in rows:
        groups[first_lemma(name).lower()].append(wnid)
    return {lemma: wnids for lemma, wnids in groups.items() if len(wnids) > 1}


@cache
def imagenet_classes() -> tuple[ImageNetClass, ...]:
    """The 1000 classes in index order, each with its prompt."""
    rows = list(imagenet_table())
    missing = [w for ws in duplicate_first_lemmas(rows).values() for w in ws if w not in _DISAMBIGUATED]
    if missing:
        raise LabelingError(f"ambiguous ImageNet class names without a prompt: {missing}")
    return tuple(ImageNetClass(i, w, n, _DISAMBIGUATED.get(w, first_lemma(n))) for i, w, n in rows)


@cache
def _by_wnid() -> dict[str, ImageNetClass]:
    return {c.wnid: c for c in imagenet_classes()}


def class_by_wnid(wnid: str) -> ImageNetClass:
    """The class of a wnid such as "n01440764"; LabelingError if it is not one of the 1000."""
    try:
        return _by_wnid()[wnid]
    except KeyError:
        raise LabelingError(f"{wnid!r} is not an ImageNet-1K class (wnid)") from None
