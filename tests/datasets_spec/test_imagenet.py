import importlib.util
from pathlib import Path

from datasets_spec.imagenet import build_table, format_table, imagenet_names, imagenet_wnids

TABLE = Path(__file__).parents[2] / "datasets_spec" / "imagenet_classes.tsv"


def test_committed_table_matches_timms_files():
    spec = importlib.util.find_spec("timm")  # finds timm's files without importing it (and torch)
    assert spec is not None, "timm is a dependency: a broken install must fail, not skip"
    info = Path(spec.origin).parent / "data" / "_info"
    rows = build_table(info / "imagenet_synsets.txt", info / "imagenet_synset_to_lemma.txt")
    assert format_table(rows) == TABLE.read_text(encoding="utf-8")


def test_wnids_and_names_are_timms_imagenet_info_by_class_index():
    from timm.data import ImageNetInfo  # imports torch: the contract itself never does

    info = ImageNetInfo()
    assert imagenet_wnids() == list(info.label_names())
    assert imagenet_names() == [info.index_to_description(i) for i in range(1000)]
    assert imagenet_wnids()[0] == "n01440764" and imagenet_names()[0] == "tench, Tinca tinca"
