"""Where a store's objects live: a local directory or an object-storage URL, one storage layer.

A store root is a local path (`/data/ds`) or a URL (`s3://bucket/prefix`, `gs://bucket/prefix`).
Every byte of a store (array chunks, records, markers, reports) goes through tensorstore key-value
stores opened here: the `file` driver on local paths, `s3` (endpoint from AWS_ENDPOINT_URL, region
from AWS_REGION / AWS_DEFAULT_REGION, credentials from the usual AWS chain, so MinIO and other
S3-compatible stores work) and `gcs` on URLs. The store's file layout (which object holds what) is
written down here once.

Transient faults of object storage (resets, timeouts, 5xx, throttling, an answer cut short) are
retried here, by `retries.retrying`, for every operation on a URL (all of them idempotent); one
that outlasts the retries raises StorageUnavailable naming the object.

Atomicity: a local write goes to a hidden temporary file `.NAME.PID.tmp`, is fsynced and renamed;
an object-storage PUT makes the object appear whole or not at all. So a reader never sees half an
object under its final name, on either.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import tensorstore as ts

from plumbing.errors import one_line
from plumbing.files import atomic_write

from . import retries, schema
from .hashing import file_sha256

URL_SCHEMES = {"s3": "s3", "gs": "gcs"}  # URL scheme → tensorstore kvstore driver
# The environment that says where object storage is and who we are there: a job passes it on to
# its workers, so every process writes to the same endpoint as the driver.
ENVIRONMENT = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "C2F_S3_CONDITIONAL_WRITE",
    retries.ENV,
    "GOOGLE_APPLICATION_CREDENTIALS",
    "TENSORSTORE_GCS_HTTP_URL",  # another GCS endpoint (a private one, an emulator)
    "GOOGLE_AUTH_TOKEN_FOR_TESTING",  # tensorstore's fixed token for such an endpoint
)
_KVSTORES: dict[tuple, ts.KvStore] = {}


# --- the layout: store-relative paths ---------------------------------------------------------
def shard_name(shard: int) -> str:
    return f"shard-{shard:06d}"


def marker_path(shard: int) -> str:
    """Store-relative path of a shard's completion marker."""
    return f"{schema.MARKERS_DIR}/{shard_name(shard)}.json"


def records_path(shard: int) -> str:
    """Store-relative path of a shard's per-instance records."""
    return f"{schema.RECORDS_DIR}/{shard_name(shard)}.jsonl.gz"


def report_path(name: str) -> str:
    """Store-relative path of a job report called `name` (e.g. label-20260101T000000Z.json)."""
    return f"{schema.REPORTS_DIR}/{name}"


def array_doc_path(name: str) -> str:
    """Store-relative path of array `name`'s Zarr v3 document."""
    return f"{name}/zarr.json"


def pixel_chunk_path(name: str, shard: int) -> str:
    """Store-relative path of the Zarr v3 shard file of pixel array `name` that holds shard
    `shard` (default chunk key encoding "c/<i>/<j>/<k>"; one zarr shard = one store shard)."""
    return f"{name}/c/{shard}/0/0"


def shard_data_files(shard: int) -> tuple[str, ...]:
    """Store-relative paths of every object that holds shard `shard`'s data: the pixel arrays'
    shard files, the per-image arrays' chunks (one chunk = one shard) and the records. A chunk
    left at its fill value may not exist."""
    return (
        pixel_chunk_path(schema.SEMANTIC, shard),
        pixel_chunk_path(schema.INSTANCE, shard),
        f"{schema.STATUS}/c/{shard}",
        f"{schema.ORIG_HW}/c/{shard}/0",
        f"{schema.VALID_HW}/c/{shard}/0",
        records_path(shard),
    )


def marker_shards(names) -> set[int]:
    """Shard numbers of the marker file names among `names` (e.g. "shard-000012.json")."""
    shards = set()
    for name in names:
        stem, dot, ext = name.rpartition(".")
        number = stem[len("shard-") :]
        if dot and ext == "json" and stem.startswith("shard-") and number.isdigit():
            shards.add(int(number))
    return shards


# --- roots ------------------------------------------------------------------------------------
def is_url(root) -> bool:
    """Whether `root` names object storage (s3://, gs://) rather than a local path."""
    return isinstance(root, str) and root.partition("://")[0] in URL_SCHEMES and "://" in root


def normalize(root):
    """A store root as the rest of the package keeps it: a Path for a local path, the URL string
    (without trailing slashes) for object storage. `Path("s3://b/p")` would lose a slash."""
    if is_url(root):
        scheme, _, rest = root.partition("://")
        if not rest.strip("/"):
            raise ValueError(f"{root}: a URL needs a bucket, e.g. {scheme}://bucket/prefix")
        return f"{scheme}://{rest.strip('/')}"
    return Path(root)


def join(root, relpath: str) -> str:
    """`root/relpath` as a string, for messages and for readers that take a URL or path."""
    return f"{str(normalize(root)).rstrip('/')}/{relpath}" if relpath else str(normalize(root))


def name(root) -> str:
    """The last part of the root (the store's folder name or the URL's last prefix part)."""
    return str(normalize(root)).rstrip("/").rsplit("/", 1)[-1]


def parent(root):
    """The folder or URL prefix that holds the root; ValueError for a store at a bucket's top."""
    root = normalize(root)
    if not is_url(root):
        return root.parent
    head, sep, _ = root.partition("://")[2].rpartition("/")
    if not sep:
        raise ValueError(f"{root}: a store needs a prefix inside its bucket, e.g. {root}/dataset")
    return f"{root.partition('://')[0]}://{head}"


def kvstore_spec(root, relpath: str = "") -> dict:
    """tensorstore kvstore spec of `root/relpath` (a directory when relpath is "" or ends in /)."""
    root = normalize(root)
    if not is_url(root):
        return {"driver": "file", "path": str(root / relpath) + ("/" if relpath.endswith("/") or not relpath else "")}
    scheme, _, rest = root.partition("://")
    bucket, _, prefix = rest.partition("/")
    path = "/".join(p for p in (prefix, relpath) if p)
    # a bucket's top is the path "", not "/" (which would be a folder named "" in it)
    spec = {"driver": URL_SCHEMES[scheme], "bucket": bucket, "path": path + ("/" if path and not relpath else "")}
    if scheme == "s3":
        spec.update(_s3_settings())
    else:
        spec["gcs_request_retries"] = _REQUEST_RETRIES
    return spec


# tensorstore retries a request that failed transiently up to 32 times with delays up to 32 s: an
# endpoint that cannot be reached (a typo, a server down) would hang a command for ~15 minutes. Its
# retries here cover a blip (about 1 s); `retries.retrying` above them backs off for longer (it
# also sees the faults they miss), so a dead endpoint is reported within ~10-20 s in all.
_REQUEST_RETRIES = {"max_retries": 3, "initial_delay": "0.1s", "max_delay": "1s"}


def _s3_settings() -> dict:
    """Endpoint, region and credentials of the S3 driver, from the usual AWS environment."""
    out = {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        out["endpoint"] = endpoint
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        out["aws_region"] = region
    out["s3_request_retries"] = _REQUEST_RETRIES
    conditional = os.environ.get("C2F_S3_CONDITIONAL_WRITE")
    if conditional in ("0", "1"):
        # tensorstore sends conditional PUTs (If-None-Match / If-Match) by default only to AWS
        # endpoints (its source: use_conditional_write.cc); elsewhere it reads, compares, then writes
        out["use_conditional_write"] = conditional == "1"
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        # keys in the environment: take them directly, not after probing ~/.aws and instance metadata
        out["aws_credentials"] = {"type": "environment"}
    return out


def _kvstore(root) -> ts.KvStore:
    """The root's key-value store, opened once per process (and per S3 environment)."""
    spec = kvstore_spec(root)
    key = tuple(sorted((k, str(v)) for k, v in spec.items()))
    if key not in _KVSTORES:
        # ValueError: a spec tensorstore refuses (e.g. a bucket name S3 does not allow)
        _KVSTORES[key] = _call("read", root, "", lambda: ts.KvStore.open(spec).result())
    return _KVSTORES[key]


def _call(kind: str, root, relpath: str, attempt):
    """`attempt()` (which issues its tensorstore requests and waits for them), called again after
    a transient fault (`retries.retrying`, counted under `kind`); its other errors (ValueError,
    many lines: refused credentials, a missing bucket) become one-line OSErrors naming the object."""
    try:
        return retries.retrying(kind, join(root, relpath), attempt)
    except ValueError as exc:
        raise OSError(f"{join(root, relpath)}: {one_line(exc)}") from None


# --- objects ----------------------------------------------------------------------------------
def write_bytes(root, relpath: str, data: bytes) -> None:
    """Store `data` at `root/relpath`; a reader sees the old object or the whole new one, never
    part of it. Local: plumbing.files.atomic_write (`.NAME.PID.tmp`, fsynced, renamed)."""
    root = normalize(root)
    if is_url(root):
        _call("write", root, relpath, lambda: _kvstore(root).write(relpath, data).result())
        return
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)


def write_all(root, objects: dict[str, bytes]) -> None:
    """`write_bytes` for each of `objects` (store-relative path → bytes); on object storage with
    all the PUTs in flight together (a store's skeleton is a few hundred objects)."""
    root = normalize(root)
    if not is_url(root):
        for relpath, data in objects.items():
            write_bytes(root, relpath, data)
        return
    kv = _kvstore(root)
    in_flight = {relpath: kv.write(relpath, data) for relpath, data in objects.items()}
    for relpath, data in objects.items():

        def attempt(relpath=relpath, data=data):  # the PUT in flight first, then a new one per retry
            future = in_flight.pop(relpath, None) or kv.write(relpath, data)
            return future.result()

        _call("write", root, relpath, attempt)


def create_exclusive(root, relpath: str, data: bytes, replacing: bytes | None = None) -> bool:
    """Write `root/relpath` only if it does not exist (or, with `replacing`, only if it still
    holds exactly those bytes). Returns whether this call wrote it. On GCS and on AWS S3 the
    condition is checked by the server (generation / If-None-Match); on other S3-compatible
    servers tensorstore checks it with a read before the write unless
    C2F_S3_CONDITIONAL_WRITE=1 says the server supports conditional PUTs.
    After a transient fault the read and the write are tried again; `data` found there once this
    call has sent it means its write landed and only the answer was lost (so `data` must be this
    caller's own: a lock's holder record is)."""
    kv = _kvstore(root)
    sent = False

    def attempt() -> bool | None:  # whether written; None: the condition or the server refused it
        nonlocal sent
        current = kv.read(relpath).result()
        if sent and current.state != "missing" and current.value == data and data != replacing:
            return True
        if replacing is None and current.state != "missing":
            return False
        if replacing is not None and (current.state == "missing" or current.value != replacing):
            return False
        sent = True
        stamp = kv.write(relpath, data, if_equal=current.stamp.generation).result()
        return True if stamp.generation != b"" else None

    wrote = _call("write", root, relpath, attempt)
    if wrote is not None:
        return wrote
    # An unmet condition leaves the generation unknown; so does a write the server refused (a
    # missing bucket reads as a missing object): with nothing in the way, that is an error.
    if replacing is None and _call("read", root, relpath, lambda: kv.read(relpath).result()).state == "missing":
        raise OSError(f"{join(root, relpath)}: the write was refused (does the bucket exist, may we write to it?)")
    return False


def read_bytes(root, relpath: str) -> bytes:
    """The object `root/relpath`; FileNotFoundError if there is none."""
    root = normalize(root)
    if not is_url(root):
        return (root / relpath).read_bytes()
    got = _call("read", root, relpath, lambda: _kvstore(root).read(relpath).result())
    if got.state == "missing":
        raise FileNotFoundError(f"{join(root, relpath)}: no such object")
    return got.value


def exists(root, relpath: str) -> bool:
    root = normalize(root)
    if not is_url(root):
        return (root / relpath).is_file()
    head = _call("read", root, relpath, lambda: _kvstore(root).read(relpath, byte_range=slice(0, 0)).result())
    return head.state != "missing"


def delete(root, relpath: str) -> None:
    """Remove `root/relpath` if it exists."""
    root = normalize(root)
    if not is_url(root):
        (root / relpath).unlink(missing_ok=True)
        return
    _call("delete", root, relpath, lambda: _kvstore(root).write(relpath, None).result())


def size(root, relpath: str, expected: int | None = None) -> int:
    """Size in bytes of `root/relpath`; FileNotFoundError if missing. On object storage, where
    tensorstore has no metadata request, pass the size you expect: one read of the bytes past it
    (none when it matches) answers instead of reading the whole object."""
    root = normalize(root)
    if not is_url(root):
        return (root / relpath).stat().st_size
    kv = _kvstore(root)

    def read_tail():
        try:
            return kv.read(relpath, byte_range=slice(expected, None)).result()
        except ValueError as exc:  # OUT_OF_RANGE: shorter than expected
            if retries.transient(exc):
                raise
            return None

    if expected is not None:
        tail = _call("read", root, relpath, read_tail)
        if tail is not None and tail.state != "missing":
            return expected + len(tail.value)
    return len(read_bytes(root, relpath))


def sha256(root, relpath: str) -> str:
    """Hex SHA-256 of the object `root/relpath`."""
    root = normalize(root)
    if not is_url(root):
        return file_sha256(root / relpath)
    return hashlib.sha256(read_bytes(root, relpath)).hexdigest()


def list_names(root, folder: str) -> list[str]:
    """Names of the objects directly inside `root/folder` (not hidden local temp files), sorted."""
    root = normalize(root)
    if not is_url(root):
        base = root / folder
        return (
            sorted(p.name for p in base.iterdir() if p.is_file() and not p.name.startswith("."))
            if base.is_dir()
            else []
        )
    # The range is only a hint: a server may list more (some emulators ignore it), and tensorstore's
    # own prefix stripping aborts the process on a key shorter than the prefix, so strip here.
    prefix = f"{folder}/".encode()
    within = ts.KvStore.KeyRange(inclusive_min=prefix, exclusive_max=f"{folder}0".encode())
    keys = _call("list", root, folder, lambda: _kvstore(root).list(within).result())
    names = (k[len(prefix) :] for k in keys if k.startswith(prefix))
    return sorted(n.decode() for n in names if b"/" not in n)


def list_all(root) -> list[str]:
    """Store-relative paths of every object under the root, sorted."""
    root = normalize(root)
    if not is_url(root):
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    return sorted(k.decode() for k in _call("list", root, "", lambda: _kvstore(root).list().result()))


def delete_all(root) -> None:
    """Remove every object under an object-storage root (a half-created store)."""
    _call("delete", root, "", lambda: _kvstore(normalize(root)).delete_range(ts.KvStore.KeyRange()).result())


def root_exists(root) -> bool:
    """Whether something is at the root: a local path that exists, or a URL with a group document."""
    root = normalize(root)
    return exists(root, "zarr.json") if is_url(root) else root.exists()
