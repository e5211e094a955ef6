"""Which images `c2f-data show` draws, chosen from the status array and the per-shard records alone.

No mask is read here: the caller reads the masks of the chosen images only. `--class NAME` names a
class of the store's label space and keeps the images one of whose instance records carries it
(each record's class is the semantic class under the instance); a class present only in the
semantic map (e.g. "sky" with no instance on it) is not indexed anywhere without reading masks, and
the ImageNet class is stored as an index without a name, so neither is matched. Filtering by
records visits the shards holding candidates in a seeded random order and stops once it has n
images, so a common class costs a few shards' records, a rare one up to all of them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from datasets_spec import schema
from datasets_spec.errors import StoreError
from datasets_spec.reader import Store
from plumbing.errors import did_you_mean

STATUSES = {"done": schema.DONE, "failed": schema.FAILED}


@dataclass(frozen=True)
class Filters:
    """What a chosen image must be: of `status`, with an instance of class `class_name` (a name of
    the label space, any case), with at least `min_instances` instances."""

    status: str = "done"
    class_name: str | None = None
    min_instances: int = 0

    @property
    def needs_records(self) -> bool:
        return self.class_name is not None or self.min_instances > 0

    def describe(self) -> str:
        """What is asked for, e.g. "done image with an instance of 'disc' and at least 2 instances"."""
        parts = [f"an instance of {self.class_name!r}"] if self.class_name is not None else []
        parts += [f"at least {self.min_instances} instances"] if self.min_instances > 0 else []
        return f"{self.status} image" + (" with " + " and ".join(parts) if parts else "")


def choose(store: Store, n: int, keys: list[str] | None, seed: int, filters: Filters | None = None) -> list[int]:
    """Indices of the images to show: the given `keys` in their order (each must pass `filters`,
    else StoreError naming it), or up to `n` images passing them, chosen at random (seeded), ascending.
    filters None: done images."""
    filters = filters or Filters()
    classes = _check(store, filters)
    status = store.status()
    if keys:
        return _given(store, keys, status, filters, classes)
    candidates = np.flatnonzero(status == STATUSES[filters.status])
    rng = np.random.default_rng(seed)
    if filters.needs_records:
        candidates = _sample_by_records(store, candidates, n, rng, filters, classes)
    if len(candidates) == 0:
        raise StoreError(f"{store.path}: no {filters.describe()} to show")
    return sorted(rng.choice(candidates, size=min(n, len(candidates)), replace=False).tolist())


def class_ids(store: Store, name: str) -> set[int]:
    """The ids of the label space named `name` (any case); StoreError with a did-you-mean if none."""
    ids = {c for c, cname in store.label_space.items() if cname.lower() == name.lower()}
    if not ids:
        names = sorted(set(store.label_space.values()))
        raise StoreError(
            f"{store.path}: no class {name!r} in the label space; {did_you_mean(name, names, 'its classes')}"
        )
    return ids


def _check(store: Store, filters: Filters) -> set[int] | None:
    """The class ids `filters` asks for (None: any); StoreError for filters that cannot match."""
    if filters.status not in STATUSES:
        raise StoreError(f"status must be one of {', '.join(STATUSES)}, not {filters.status!r}")
    if filters.min_instances < 0:
        raise StoreError(f"--min-instances must be 0 or more, not {filters.min_instances}")
    if filters.status != "done" and filters.needs_records:
        raise StoreError("--class and --min-instances choose among done images: failed images have no instances")
    return None if filters.class_name is None else class_ids(store, filters.class_name)


def _given(store: Store, keys: list[str], status: np.ndarray, filters: Filters, classes) -> list[int]:
    indices = [_index_of(store.keys(), key, store) for key in keys]
    for key, i in zip(keys, indices):
        if status[i] != STATUSES[filters.status]:
            found = schema.STATUS_NAMES.get(int(status[i]), str(status[i]))
            raise StoreError(f"{store.path}: image {key!r} is {found}, not {filters.status} (see --status)")
    if filters.needs_records:
        by_image = {}
        for shard in sorted({store.layout.shard_of(i) for i in indices}):
            by_image.update(_records_by_image(store, shard))
        for key, i in zip(keys, indices):
            if not _passes(by_image.get(i, []), filters, classes):
                raise StoreError(f"{store.path}: image {key!r} is not a {filters.describe()}")
    return indices


def _index_of(all_keys: np.ndarray, key: str, store: Store) -> int:
    """The index of `key` in the store's keys (str [N]), compared as one array: no dict of N keys."""
    found = np.flatnonzero(all_keys == key)
    if not len(found):
        raise StoreError(f"{store.path}: no image with key {key!r}")
    return int(found[0])


def _sample_by_records(store: Store, candidates: np.ndarray, n: int, rng, filters: Filters, classes) -> list[int]:
    """Candidates that pass `filters`, from the records of their shards in random order, until n are found."""
    found: list[int] = []
    wanted = set(candidates.tolist())
    for shard in rng.permutation(np.unique(candidates // store.layout.shard_size)):
        start, stop = store.layout.shard_range(int(shard))
        by_image = _records_by_image(store, int(shard))
        found += [i for i in range(start, stop) if i in wanted and _passes(by_image.get(i, []), filters, classes)]
        if len(found) >= n:
            break
    return found


def _records_by_image(store: Store, shard: int) -> dict[int, list[dict]]:
    by_image = defaultdict(list)
    for rec in store.records(shard):
        by_image[rec["index"]].append(rec)
    return by_image


def _passes(records: list[dict], filters: Filters, classes: set[int] | None) -> bool:
    """Whether an image with these instance records passes the instance filters."""
    if len(records) < filters.min_instances:
        return False
    return classes is None or any(rec.get("semantic") in classes for rec in records)
