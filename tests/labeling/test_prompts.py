import hashlib
import json

import pytest

from labeling.errors import LabelingError
from labeling.prompts import apply_prompt_file, check_prompts, clean_phrases
from labeling.sources import list_images


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


@pytest.fixture
def folder(tmp_path):
    for key in ("birds/heron.jpg", "birds/gull.jpg", "birds/sea/tern.jpg", "cats/tabby.jpg", "misc/x.jpg"):
        touch(tmp_path / "images" / key)
    return tmp_path / "images"


def test_list_file_second_column_gives_prompts(tmp_path):
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        touch(tmp_path / name)
    (tmp_path / "list.txt").write_text(
        "a.jpg\ttabby cat;  sofa ;Tabby cat\n"  # cleaned: spaces collapsed, repeats (any case) dropped
        "b.jpg\n"
        "a.jpg\tSt. Bernard\n"  # a repeated path merges its prompts; "." would split a phrase
        "# c.jpg\tignored\n"
        "c.jpg\t \n",
        encoding="utf-8",
    )
    items = {i.key: i.prompts for i in list_images(tmp_path / "list.txt").items}
    assert items == {"a.jpg": ("tabby cat", "sofa", "St Bernard"), "b.jpg": (), "c.jpg": ()}


def test_input_hash_is_unchanged_without_prompts_and_follows_them(tmp_path):
    touch(tmp_path / "a.jpg")
    (tmp_path / "plain.txt").write_text("a.jpg\n")
    (tmp_path / "cat.txt").write_text("a.jpg\tcat\n")
    (tmp_path / "dog.txt").write_text("a.jpg\tdog\n")
    before = hashlib.sha256(json.dumps(["a.jpg", -1, None]).encode() + b"\n").hexdigest()  # the hash stores hold
    assert list_images(tmp_path / "plain.txt").sha256 == before
    assert len({list_images(tmp_path / f"{n}.txt").sha256 for n in ("plain", "cat", "dog")}) == 3


def test_prompt_file_most_specific_entry_wins(folder, tmp_path):
    (tmp_path / "prompts.json").write_text(
        json.dumps(
            {
                "birds/": ["bird"],
                "birds/sea/": "seabird",
                "birds/heron.jpg": ["heron", "water"],
                "*": "animal",
                "dogs/": ["dog"],  # matches nothing: a warning, not an error
            }
        )
    )
    images = apply_prompt_file(list_images(folder), tmp_path / "prompts.json")
    assert {i.key: i.prompts for i in images.items} == {
        "birds/gull.jpg": ("bird",),
        "birds/heron.jpg": ("heron", "water"),
        "birds/sea/tern.jpg": ("seabird",),
        "cats/tabby.jpg": ("animal",),
        "misc/x.jpg": ("animal",),
    }
    assert apply_prompt_file(list_images(folder), None) == list_images(folder)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "cannot read prompts"),
        ('["bird"]', "must be a JSON object"),
        ('{"birds/": 3}', "prompts for 'birds/' must be a string or a list of strings"),
    ],
)
def test_bad_prompt_files_are_labeling_errors_naming_the_file(tmp_path, folder, content, message):
    (tmp_path / "p.json").write_text(content)
    with pytest.raises(LabelingError, match=message) as err:
        apply_prompt_file(list_images(folder), tmp_path / "p.json")
    assert str(tmp_path / "p.json") in str(err.value)


def test_images_without_any_prompt_are_refused_unless_extra_prompts_cover_them(folder, tmp_path):
    (tmp_path / "prompts.json").write_text(json.dumps({"birds/": "bird"}))
    images = apply_prompt_file(list_images(folder), tmp_path / "prompts.json")
    with pytest.raises(LabelingError, match=r"2 of 5 images have no text prompt for the grounded backend \(first: c"):
        check_prompts(images, "grounded", [])
    with pytest.raises(LabelingError, match="no text prompt"):
        check_prompts(images, "grounded", [" . "])  # cleans to nothing
    check_prompts(images, "grounded", ["object"])
    (tmp_path / "prompts.json").write_text(json.dumps({"*": "thing"}))
    check_prompts(apply_prompt_file(list_images(folder), tmp_path / "prompts.json"), "grounded", [])


def test_clean_phrases():
    assert clean_phrases([" Crane  bird ", "crane bird", "a.b", "", "."]) == ["Crane bird", "a b"]
