import numpy as np

from datasets_spec.records import decode_rle, encode_rle, rles_from_counts


def run_lengths(mask: np.ndarray) -> np.ndarray:
    """Column-major run lengths of a bool mask, zeros first (0 when it starts with a one)."""
    counts, value, run = [], False, 0
    for pixel in mask.ravel(order="F"):
        if pixel != value:
            counts.append(run)
            value, run = pixel, 0
        run += 1
    counts.append(run)
    return np.array(counts)


def test_rles_from_counts_equal_encode_rle():
    rng = np.random.default_rng(0)
    masks = [rng.random((7, 5)) < 0.5, np.ones((3, 4), bool), np.zeros((4, 3), bool), rng.random((30, 20)) < 0.1]
    for mask in masks:
        counts = run_lengths(mask)
        assert counts.sum() == mask.size
        (ours,) = rles_from_counts([counts], *mask.shape)
        assert ours == encode_rle(mask)
        assert np.array_equal(decode_rle(ours), mask)
    assert rles_from_counts([], 3, 3) == []
