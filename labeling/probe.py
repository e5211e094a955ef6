"""Before a job on a Ray cluster: every node that can run a label worker must reach the store and the images.

On a cluster without a shared file system, a local DATASET path names a different directory on
each machine, and workers would scatter their shards over their own disks while the driver sees
an incomplete store. So, before the store is created or any shard is written, the driver writes
a probe file under DATASET and a task pinned to each worker node reads it back (the node sees the
driver's storage), writes and reads back a file of its own (it may write there), and reads one
input image (a file, or an object read through the storage layer when the images are in a
bucket). The first node that cannot stops the job, in one line naming the node and the path.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

from datasets_spec import storage

from . import cluster
from .errors import LabelingError

PREFIX = ".c2f-probe-"  # probe files under DATASET; a job removes them when its probe ends
_IMAGE_BYTES = 1 << 16  # enough of an image to know it can be read


def check_nodes(output, image_path, cfg) -> None:
    """Probe every alive node with room for a label worker (see the module docstring); raise
    LabelingError naming the first node that cannot use `output` or read `image_path`."""
    nodes = cluster.worker_nodes(cfg)
    if not nodes:
        return  # the worker count check names the missing resource
    root, relpath, token = str(output), f"{PREFIX}{secrets.token_hex(8)}", secrets.token_hex(16).encode()
    made_dir = not storage.is_url(root) and not Path(root).exists()
    try:
        try:
            storage.write_bytes(root, relpath, token)
        except OSError as exc:
            raise LabelingError(
                f"this machine (the driver) cannot write {_where(root, relpath)}: {exc.strerror or exc}"
            ) from None
        for (node_id, address), (problem, failed) in zip(
            nodes, cluster.run_on_nodes(probe_node, nodes, root, relpath, token, str(image_path))
        ):
            if problem or failed:
                raise LabelingError(
                    f"node {address} ({node_id[:12]}) cannot use {problem or f'the store: {failed}'}; DATASET "
                    "and the images must be on a file system or object store that every node reaches "
                    "(docs/labeling.md, On a cluster)"
                )
    finally:
        storage.delete(root, relpath)
        if made_dir:
            _remove_if_empty(Path(root))


def probe_node(root: str, relpath: str, token: bytes, image_path: str) -> str | None:
    """On one node: None if it reads the driver's probe file `root/relpath` as `token`, writes and
    reads back a file of its own beside it, and reads `image_path`; else "PATH: what went wrong"."""
    try:
        if storage.read_bytes(root, relpath) != token:
            return f"{_where(root, relpath)}: it holds other bytes than the driver wrote there"
    except FileNotFoundError:
        return f"{_where(root, relpath)}: the probe file the driver wrote there is missing on this node"
    except OSError as exc:
        return _failed(_where(root, relpath), exc)
    own, mine = f"{relpath}-{socket.gethostname()}-{os.getpid()}", secrets.token_hex(16).encode()
    try:
        storage.write_bytes(root, own, mine)
        if storage.read_bytes(root, own) != mine:
            return f"{_where(root, own)}: reads back other bytes than this node wrote"
    except OSError as exc:
        return _failed(_where(root, own), exc)
    finally:
        storage.delete(root, own)
    try:
        _read_image(image_path)
    except OSError as exc:
        return f"the input image {_failed(image_path, exc)}"
    return None


def _read_image(image_path: str) -> None:
    """Read the start of a local image file, or the whole image object at a URL (storage has no
    ranged read; one image is small)."""
    if storage.is_url(image_path):
        folder, _, key = image_path.rpartition("/")
        storage.read_bytes(folder, key)
        return
    with open(image_path, "rb") as f:
        f.read(_IMAGE_BYTES)


def _failed(where: str, exc: OSError) -> str:
    """`where: reason`; object storage's errors already start with the object's URL."""
    reason = str(exc.strerror or exc)
    return reason if reason.startswith(where) else f"{where}: {reason}"


def _where(root: str, relpath: str) -> str:
    """`root/relpath` as this machine resolves it (a relative local path depends on the directory)."""
    if storage.is_url(root):
        return f"{root.rstrip('/')}/{relpath}"
    return os.path.abspath(os.path.join(root, relpath))


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass  # something else is there now: not the probe's to remove


def remove_leftovers(output) -> list[Path]:
    """Remove probe files a killed job left under a local DATASET (and DATASET, if that leaves it
    empty), so the next run does not take the folder for a store. Returns what went."""
    if storage.is_url(str(output)) or not Path(output).is_dir():
        return []
    gone = list(Path(output).glob(f"{PREFIX}*"))
    for path in gone:
        path.unlink(missing_ok=True)
    if gone:
        _remove_if_empty(Path(output))
    return gone
