import numpy as np
import pytest

from datasets_spec.geometry import fit
from labeling.backends import classic, create_backend


@pytest.fixture(scope="module")
def semantic():
    return create_backend("semantic", "classic")


@pytest.fixture(scope="module")
def instances():
    return create_backend("instance", "classic")


def centre_window(height, width):
    return slice(height * 2 // 5, height * 3 // 5), slice(width * 2 // 5, width * 3 // 5)


def test_the_object_covers_the_image_centre_on_real_photos(photos, semantic, instances):
    names = list(photos)
    images = [photos[n] for n in names]
    sizes = [fit(*im.shape[:2], 256) for im in images]
    maps = semantic.predict(images, sizes)
    found = instances.predict(images, [["cat"]] * len(images))
    for image, size, sem, inst in zip(images, sizes, maps, found):
        assert sem.shape == size and sem.dtype == np.int32
        assert set(np.unique(sem)) <= set(semantic.label_space())
        assert (sem[centre_window(*size)] == 0).mean() > 0.5  # 0 = "object"
        assert len(inst) >= 1 and inst.masks.shape[1:] == image.shape[:2]
        assert inst.masks[0][centre_window(*image.shape[:2])].mean() > 0.5
        assert 0.01 < inst.masks[0].mean() < 0.95
        assert inst.source == "classic" and inst.prompts == [None] * len(inst)


def test_background_bands_are_ordered_dark_to_light(photos, semantic):
    image = photos["coffee"]
    sem = semantic.predict([image], [image.shape[:2]])[0]
    grey = image.mean(2)
    means = [grey[sem == c].mean() for c in range(1, 5) if (sem == c).sum() > 500]
    assert means == sorted(means)


def test_deterministic_across_backend_objects(photos):
    image = photos["astronaut"]
    runs = []
    for _ in range(2):
        classic._CACHE.clear()  # the second run must compute, not find the first run's answer
        sem = create_backend("semantic", "classic").predict([image], [(256, 256)])[0]
        inst = create_backend("instance", "classic").predict([image], [[]])[0]
        runs.append((sem, inst.masks, inst.scores))
    for a, b in zip(*runs):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("shape", [(5, 7, 3), (1, 1, 3), (3, 400, 3), (64, 64, 3)])
def test_degenerate_images_still_label(semantic, instances, shape):
    image = np.full(shape, 128, np.uint8)
    size = fit(shape[0], shape[1], 256)
    assert semantic.predict([image], [size])[0].shape == size
    assert instances.predict([image], [[]])[0].masks.shape[1:] == shape[:2]


def test_identity_is_json_friendly_and_names_the_parameters(semantic):
    ident = semantic.identity()
    assert ident["name"] == "classic" and ident["params"]["clusters"] == 4
    assert len(semantic.label_space()) == 5 and semantic.label_space()[0] == "object"
