import hashlib

import pytest

from labeling.class_names import class_by_wnid
from labeling.errors import LabelingError
from labeling.sources import list_images


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_imagenet_root_gives_labels_class_prompts_and_sorted_keys(tmp_path):
    touch(tmp_path / "train/n02012849/n02012849_2.JPEG")
    touch(tmp_path / "train/n02012849/n02012849_1.JPEG")
    touch(tmp_path / "train/n01440764/n01440764_9.JPEG")
    touch(tmp_path / "train/n01440764/.hidden.JPEG")
    touch(tmp_path / "train/n01440764/notes.txt")
    touch(tmp_path / "train/LOC_synset_mapping.txt")
    touch(tmp_path / "val/x.JPEG")  # other splits are not part of the job
    images = list_images(tmp_path)
    assert images.kind == "imagenet"
    assert [i.key for i in images.items] == [
        "train/n01440764/n01440764_9.JPEG",
        "train/n02012849/n02012849_1.JPEG",
        "train/n02012849/n02012849_2.JPEG",
    ]
    assert [i.label for i in images.items] == [0, 134, 134]
    assert images.items[1].class_prompt == "crane bird" == class_by_wnid("n02012849").prompt
    assert images.root / images.items[0].key == tmp_path / images.items[0].key  # as workers open it


def test_imagenet_root_with_an_unknown_class_directory_is_refused(tmp_path):
    touch(tmp_path / "train/n01440764/a.JPEG")
    touch(tmp_path / "train/extras/b.JPEG")
    with pytest.raises(LabelingError, match="extras"):
        list_images(tmp_path)


def test_folder_is_searched_recursively_skipping_hidden_and_non_images(tmp_path):
    for name in ["b/c/deep.PNG", "a.jpg", "z.TIFF", "w.webp", "x.gif", "y.bmp", "k.jpeg"]:
        touch(tmp_path / name)
    for name in [".hidden.jpg", ".git/obj.jpg", "b/.cache/t.png", "readme.md", "noext", "a.jpg.txt"]:
        touch(tmp_path / name)
    images = list_images(tmp_path)
    assert images.kind == "folder"
    assert [i.key for i in images.items] == ["a.jpg", "b/c/deep.PNG", "k.jpeg", "w.webp", "x.gif", "y.bmp", "z.TIFF"]
    assert {(i.label, i.class_prompt) for i in images.items} == {(-1, None)}


def test_non_ascii_names_are_listed_and_hashed(tmp_path):
    touch(tmp_path / "café/日本語 ünï.jpg")
    touch(tmp_path / "Ωmega.png")
    images = list_images(tmp_path)
    assert [i.key for i in images.items] == ["café/日本語 ünï.jpg", "Ωmega.png"]
    # the value stores hold in their provenance: sha256 of UTF-8 JSON lines [key, label, class_prompt]
    assert images.sha256 == "c4cefe99961f81e39a58b6c17d8fca3cc1ba7b7b406905dc11d1360eb0594047"


def test_list_file_resolves_relative_and_absolute_paths(tmp_path):
    touch(tmp_path / "imgs/a.jpg")
    outside = touch(tmp_path / "elsewhere/b.png")
    listing = tmp_path / "imgs" / "list.txt"
    listing.write_text(
        f"# comment\n\nsub/../a.jpg\nmissing.jpg\n{outside}\n{tmp_path / 'imgs/a.jpg'}\n.hidden.jpg\nnotes.txt\n",
        encoding="utf-8",
    )
    images = list_images(listing)
    assert images.kind == "list" and images.root == (tmp_path / "imgs").absolute()
    assert [i.key for i in images.items] == [outside.as_posix(), "a.jpg", "missing.jpg"]
    assert images.root / images.items[0].key == outside  # an absolute key stays absolute


def test_order_and_hash_do_not_depend_on_creation_order(tmp_path):
    names = ["b.jpg", "a.jpg", "c/d.jpg", "B.jpg"]
    for name in names:
        touch(tmp_path / "one" / name)
    for name in reversed(names):
        touch(tmp_path / "two" / name)
    one, two = list_images(tmp_path / "one"), list_images(tmp_path / "two")
    assert one.items == two.items and one.sha256 == two.sha256
    assert [i.key for i in one.items] == sorted(names)
    assert one.sha256 != hashlib.sha256(b"").hexdigest()


def test_missing_source_is_an_error(tmp_path):
    with pytest.raises(LabelingError, match="not found"):
        list_images(tmp_path / "nope")
