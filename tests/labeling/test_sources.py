import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest

from labeling import sources
from labeling.class_names import class_by_wnid
from labeling.errors import LabelingError
from labeling.sources import ImageItem, ImageItems, ImageList, list_images

from .photo_files import upload


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


def _reference_sha256(items) -> str:
    """The input hash as first defined (stores keep it): json.dumps of each item's fields, one per line."""
    digest = hashlib.sha256()
    for item in items:
        fields = list(item) if item.prompts else list(item[:3])
        digest.update(json.dumps(fields, ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()


@pytest.mark.parametrize("with_prompts", [False, True])
def test_input_hash_equals_json_lines_of_the_items(monkeypatch, with_prompts):
    monkeypatch.setattr(sources, "_HASH_ROWS", 3)  # several updates, one partial
    keys = [
        'a "quoted" \\ name.jpg',
        "tab\there/x.png",
        "ctl\x01\x1f.jpg",
        "Ωmega/日本.jpg",
        "emoji 🐟.jpg",
        "</s>.jpg",
        "z.jpg",
    ]
    labels = [0, 1, -1, 2, 0, -1, 1]
    names = {0: "tench", 1: 'a "q" \\ name', 2: "Größe"}
    prompts = [("tabby cat", "sofa"), (), (), ("ω",), (), (), ()] if with_prompts else None
    images = ImageList(Path("/x"), "list", ImageItems(keys, labels, names, prompts))
    assert images.sha256 == _reference_sha256(list(images.items))
    assert [i.class_prompt for i in images.items] == [
        "tench",
        'a "q" \\ name',
        None,
        "Größe",
        "tench",
        None,
        'a "q" \\ name',
    ]


def test_items_index_slice_and_pickle_like_a_tuple_of_image_items():
    keys = [f"k{i:03d}.jpg" for i in range(300)]
    items = ImageItems(keys, [i % 3 - 1 for i in range(300)], {0: "zero", 1: "one"}, [(f"p{i}",) for i in range(300)])
    as_tuple = tuple(items)
    assert as_tuple[7] == items[7] == ImageItem("k007.jpg", 0, "zero", ("p7",)) and items[-1] == as_tuple[-1]
    shard = items[128:256]
    assert list(shard) == list(as_tuple[128:256]) and len(shard) == 128
    assert list(pickle.loads(pickle.dumps(shard))) == list(shard)
    assert len(pickle.dumps(shard)) < len(pickle.dumps(items)) / 2  # a shard travels without the rest


def test_file_names_that_are_not_utf8_are_skipped(tmp_path):
    touch(tmp_path / "good.jpg")
    os.close(os.open(os.fsencode(tmp_path) + b"/bad\xff.jpg", os.O_CREAT | os.O_WRONLY))
    assert [i.key for i in list_images(tmp_path).items] == ["good.jpg"]


@pytest.mark.parametrize("layout", ["imagenet", "folder"])
def test_a_bucket_prefix_lists_as_its_local_copy(tmp_path, s3_bucket, layout):
    if layout == "imagenet":
        names = ["train/n02012849/n02012849_2.JPEG", "train/n01440764/n01440764_9.JPEG", "train/n01440764/.h.JPEG"]
        names += ["train/n01440764/notes.txt", "train/LOC_synset_mapping.txt", "val/x.JPEG", "train/.cache/n.JPEG"]
    else:
        names = ["b/c/deep.PNG", "a.jpg", "café/日本語 ünï.jpg", ".git/obj.jpg", "b/.cache/t.png", "readme.md"]
    for name in names:
        touch(tmp_path / "local" / name, name.encode())
    upload(tmp_path / "local", f"{s3_bucket}/{layout}/")
    local, remote = list_images(tmp_path / "local"), list_images(f"{s3_bucket}/{layout}/")
    assert (remote.kind, remote.root) == (layout, f"{s3_bucket}/{layout}")
    assert remote.items == local.items and len(remote) == 2 + (layout == "folder")
    assert remote.sha256 == local.sha256


def test_a_bucket_prefix_with_an_unknown_class_directory_is_refused(s3_bucket):
    from datasets_spec import storage

    for key in ("train/n01440764/a.JPEG", "train/extras/b.JPEG"):
        storage.write_bytes(f"{s3_bucket}/in", key, b"x")
    with pytest.raises(LabelingError, match=f"{s3_bucket}/in/train/extras: not a class directory"):
        list_images(f"{s3_bucket}/in")


def test_a_missing_prefix_or_bucket_is_a_one_line_error(s3_bucket):
    with pytest.raises(LabelingError, match="no objects under this prefix") as missing:
        list_images(f"{s3_bucket}/nothing")
    with pytest.raises(LabelingError, match=f"cannot list the images at {s3_bucket}-gone/x") as gone:
        list_images(f"{s3_bucket}-gone/x")
    assert "\n" not in str(missing.value) + str(gone.value)


def test_images_at_the_top_of_a_bucket_are_listed_by_their_object_names(s3_bucket):
    import boto3

    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
    client.put_object(Bucket=s3_bucket.removeprefix("s3://"), Key="train/n01440764/a.JPEG", Body=b"x")
    images = list_images(s3_bucket)
    assert (images.kind, [i.key for i in images.items], images.root) == (
        "imagenet",
        ["train/n01440764/a.JPEG"],
        s3_bucket,
    )
