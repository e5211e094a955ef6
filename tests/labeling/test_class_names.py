import pytest

from labeling.class_names import class_by_wnid, duplicate_first_lemmas, imagenet_classes
from labeling.errors import LabelingError


def test_table_has_1000_classes_in_index_order():
    classes = imagenet_classes()
    assert len(classes) == 1000
    assert [c.index for c in classes] == list(range(1000))
    assert classes[0].wnid == "n01440764" and classes[0].prompt == "tench"
    assert len({c.wnid for c in classes}) == 1000


def test_all_prompts_are_unique_and_clean():
    prompts = [c.prompt for c in imagenet_classes()]
    assert len({p.lower() for p in prompts}) == 1000
    assert not [p for p in prompts if "_" in p or "." in p or "," in p or p != p.strip() or not p]


def test_ambiguous_names_are_found_and_disambiguated():
    rows = [(c.index, c.wnid, c.name) for c in imagenet_classes()]
    duplicates = duplicate_first_lemmas(rows)
    assert set(duplicates) >= {"crane", "maillot", "cardigan"}
    assert class_by_wnid("n02012849").prompt == "crane bird"
    assert class_by_wnid("n03126707").prompt == "construction crane"
    assert class_by_wnid("n02113186").prompt != class_by_wnid("n02963159").prompt
    assert imagenet_classes()[134].prompt == "crane bird"


def test_unknown_wnid_is_a_labeling_error():
    with pytest.raises(LabelingError, match="n99999999"):
        class_by_wnid("n99999999")
