"""A crash-safe persistent store for preprocessing: each item handed out at most once.

Layout: one data file per (party, session, kind) batch and one cursor file next to it.

    data file:   MAGIC(8) | header_len(4) | header (JSON: version, party, session, domain,
                 kind, count, width, id) | body (count * width little-endian uint64) |
                 tag(32) = BLAKE2b-256(key, "data" | header_len | header | body)
    cursor file: MAGIC(8) | file_id(16) | reserved(8) | tag(32) = BLAKE2b-256(key, "cursor" |
                 file_id | reserved)

`key` is a 32-byte secret the node holds (never stored next to the files). Loading checks
the tag (tampering, truncation, appended bytes), then that party, session, domain and kind
are the expected ones (files swapped between parties or sessions), and that the cursor
belongs to this data file. Every failure raises StorageIntegrityError. Files are created
with mode 0600 and refused at load if group or others may read them.

Use-once discipline (SECURITY-TESTS T04): `take(k)` first makes the reservation durable
(cursor written to a temporary file, fsync, atomic rename, fsync of the directory) and only
then returns the items. After a crash the cursor says how far items were *reserved*; items
reserved but never confirmed as used are burned (skipped), never handed out again.
`confirm(k)` is bookkeeping only (how many of the reserved were used).

Limitation, stated: someone who can write the directory can roll the cursor back to an
older authentic version (replaying an old cursor file); detecting that needs a monotonic
counter outside the directory (a TPM, or the node's job registry), which the daemon should
provide. The file id binds the cursor to one data file, so cursors cannot be moved between
files.

Layering note: this module does file I/O, which protocols/ otherwise avoids; it takes an
explicit directory and key (no config, no environment) so the composition root stays in mpc/.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import stat
import tempfile
from pathlib import Path

import numpy as np

from protocols.errors import PreprocessingExhausted, StorageIntegrityError
from protocols.preprocessing.base import Preprocessing, Shape

__all__ = ["PrepStore", "StoredItems", "StoredPreprocessing"]

MAGIC_DATA = b"SMPCPRP1"
MAGIC_CURSOR = b"SMPCCUR1"
TAG = 32
VERSION = 1
MAX_HEADER = 4096
_U64 = np.dtype(np.uint64)


def _mac(key: bytes, *parts: bytes) -> bytes:
    h = hashlib.blake2b(key=key, digest_size=TAG, person=b"smpc-store-v1")
    for p in parts:
        h.update(len(p).to_bytes(8, "little") + p)
    return h.digest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write a 0600 file atomically and durably: a unique temp file, fsync, rename, fsync
    dir (concurrent writers never share a temp file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _read_private(path: Path) -> bytes:
    try:
        st = os.stat(path)
    except FileNotFoundError as e:
        raise StorageIntegrityError(f"{path.name}: missing") from e
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise StorageIntegrityError(f"{path.name}: mode {oct(stat.S_IMODE(st.st_mode))}, expected 0600")
    return path.read_bytes()


class PrepStore:
    """One node's preprocessing directory for one (party, session, domain).

    `key`: 32 secret bytes held by the node (e.g. derived from its key file).
    """

    def __init__(self, directory: str | os.PathLike, *, key: bytes, party: int, session: bytes, domain: str):
        if len(key) < 32:
            raise StorageIntegrityError("store key must have at least 32 bytes")
        self.dir = Path(directory)
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.key, self.party, self.session, self.domain = bytes(key), int(party), bytes(session), str(domain)

    def _name(self, kind: str) -> str:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in kind)
        return f"p{self.party}-{self.session.hex()[:32]}-{safe}"

    def paths(self, kind: str) -> tuple[Path, Path]:
        base = self._name(kind)
        return self.dir / f"{base}.prep", self.dir / f"{base}.cursor"

    def write(self, kind: str, items: np.ndarray) -> Path:
        """Store `items` (count x width uint64, one row per item) for `kind`. Refuses to
        overwrite an existing batch of the same kind (that could hand items out twice)."""
        items = np.ascontiguousarray(items, dtype=np.uint64)
        if items.ndim != 2:
            raise ValueError("items must be a (count, width) array")
        data_path, cur_path = self.paths(kind)
        if data_path.exists() or cur_path.exists():
            raise StorageIntegrityError(f"{data_path.name}: a batch of {kind!r} is already stored")
        file_id = os.urandom(16)
        header = json.dumps(
            {
                "version": VERSION, "party": self.party, "session": self.session.hex(),
                "domain": self.domain, "kind": kind, "count": int(items.shape[0]),
                "width": int(items.shape[1]), "id": file_id.hex(),
            },
            sort_keys=True,
        ).encode()
        hl = len(header).to_bytes(4, "little")
        body = items.astype("<u8", copy=False).tobytes()
        tag = _mac(self.key, b"data", hl, header, body)
        _write_atomic(cur_path, self._cursor_bytes(file_id, 0))
        _write_atomic(data_path, MAGIC_DATA + hl + header + body + tag)
        return data_path

    def _cursor_bytes(self, file_id: bytes, reserved: int) -> bytes:
        r = reserved.to_bytes(8, "little")
        return MAGIC_CURSOR + file_id + r + _mac(self.key, b"cursor", file_id, r)

    def open(self, kind: str) -> StoredItems:
        """Load and verify a batch; StorageIntegrityError on any mismatch."""
        data_path, cur_path = self.paths(kind)
        raw = _read_private(data_path)
        if len(raw) < 12 + TAG or raw[:8] != MAGIC_DATA:
            raise StorageIntegrityError(f"{data_path.name}: not a preprocessing file (or truncated)")
        hlen = int.from_bytes(raw[8:12], "little")
        if hlen > MAX_HEADER or len(raw) < 12 + hlen + TAG:
            raise StorageIntegrityError(f"{data_path.name}: truncated header")
        header, body, tag = raw[12 : 12 + hlen], raw[12 + hlen : -TAG], raw[-TAG:]
        if not hmac.compare_digest(tag, _mac(self.key, b"data", raw[8:12], header, body)):
            raise StorageIntegrityError(f"{data_path.name}: authentication failed (tampered, truncated or foreign)")
        try:
            h = json.loads(header)
            want = {"version": VERSION, "party": self.party, "session": self.session.hex(),
                    "domain": self.domain, "kind": kind}
            bad = [k for k, v in want.items() if h.get(k) != v]
            count, width, file_id = int(h["count"]), int(h["width"]), bytes.fromhex(h["id"])
        except (ValueError, KeyError, TypeError) as e:
            raise StorageIntegrityError(f"{data_path.name}: malformed header") from e
        if bad:
            raise StorageIntegrityError(
                f"{data_path.name}: header {', '.join(f'{k}={h.get(k)!r}' for k in bad)} does not match this "
                f"node (party {self.party}, session {self.session.hex()}, {self.domain}, {kind})"
            )
        if len(body) != 8 * count * width:
            raise StorageIntegrityError(f"{data_path.name}: body length does not match the header")
        lock = self._lock(kind)
        try:
            reserved = self.read_cursor(cur_path, file_id)
            if reserved > count:
                raise StorageIntegrityError(f"{cur_path.name}: cursor beyond the end")
        except BaseException:
            os.close(lock)
            raise
        items = np.frombuffer(body, dtype="<u8").reshape(count, width).astype(np.uint64)
        return StoredItems(self, kind, items, file_id, reserved, lock)

    def read_cursor(self, cur_path: Path, file_id: bytes) -> int:
        """The durable cursor of the batch `file_id`, authenticated."""
        craw = _read_private(cur_path)
        if len(craw) != 8 + 16 + 8 + TAG or craw[:8] != MAGIC_CURSOR:
            raise StorageIntegrityError(f"{cur_path.name}: malformed cursor")
        cid, r, ctag = craw[8:24], craw[24:32], craw[32:]
        if not hmac.compare_digest(ctag, _mac(self.key, b"cursor", cid, r)) or cid != file_id:
            raise StorageIntegrityError(f"{cur_path.name}: cursor authentication failed or belongs to another file")
        return int.from_bytes(r, "little")

    def _lock(self, kind: str) -> int:
        """An exclusive lock on the batch for as long as it is open: a second opener (another
        process, or this one) is refused instead of being handed the same items."""
        path = self.dir / f"{self._name(kind)}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StorageIntegrityError(f"{path.name}: the batch is open elsewhere") from None
        return fd


class StoredItems:
    """A loaded batch. `reserved` items (everything up to the durable cursor) are gone:
    handed out before, or burned by a crash."""

    def __init__(
        self, store: PrepStore, kind: str, items: np.ndarray, file_id: bytes, reserved: int,
        lock: int | None = None,
    ):
        self.store, self.kind, self.items, self.file_id = store, kind, items, file_id
        self.reserved = reserved
        self.confirmed = 0
        self._lock = lock

    def close(self) -> None:
        """Release the batch's lock (also on garbage collection)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __del__(self) -> None:
        self.close()

    @property
    def remaining(self) -> int:
        return self.items.shape[0] - self.reserved

    def _fault(self, point: str) -> None:
        """Crash-injection hook for tests; a no-op in production."""

    def take(self, k: int) -> np.ndarray:
        """Reserve k items durably, then return them (a copy). PreprocessingExhausted if fewer
        than k remain."""
        if k < 0 or k > self.remaining:
            raise PreprocessingExhausted(
                f"stored {self.kind}: {k} items needed, {self.remaining} of {self.items.shape[0]} left"
            )
        if self._lock is None:
            raise StorageIntegrityError(f"stored {self.kind}: batch is closed")
        start = self.reserved
        _, cur_path = self.store.paths(self.kind)
        if self.store.read_cursor(cur_path, self.file_id) != start:
            raise StorageIntegrityError(f"{cur_path.name}: cursor moved under us (rolled back or shared)")
        self._fault("before-reserve")
        _write_atomic(cur_path, self.store._cursor_bytes(self.file_id, start + k))
        self.reserved = start + k
        self._fault("after-reserve")
        return self.items[start : start + k].copy()

    def confirm(self, k: int) -> None:
        """Bookkeeping: k of the reserved items were used."""
        self.confirmed += k


class StoredPreprocessing(Preprocessing):
    """A Preprocessing view of a PrepStore: elementwise kinds are stored one item per row
    (triples: columns a, b, c; square_pairs: a, a^2; bits, randoms: one column). Items are
    reserved durably before they are returned (see the module docstring)."""

    name = "stored"
    WIDTH = {"triples": 3, "square_pairs": 2, "bits": 1, "randoms": 1}

    def __init__(self, store: PrepStore, dtype: np.dtype = _U64):
        self.store, self.dtype = store, dtype
        self._open: dict[str, StoredItems] = {}

    def supports(self, kind: str) -> bool:
        """The elementwise kinds a store holds (whether any is stored is found on use)."""
        return super().supports(kind) and kind in self.WIDTH

    def close(self) -> None:
        """Release every batch this view holds open."""
        for items in self._open.values():
            items.close()
        self._open.clear()

    def _items(self, kind: str) -> StoredItems:
        if kind not in self._open:
            try:
                self._open[kind] = self.store.open(kind)
            except StorageIntegrityError as e:
                if "missing" in str(e):
                    raise self._unsupported(kind, "(nothing stored)") from e
                raise
        return self._open[kind]

    def _take(self, kind: str, shape: Shape) -> list[np.ndarray]:
        shape = tuple(shape)
        k = int(np.prod(shape, dtype=np.int64))
        rows = self._items(kind).take(k)
        return [rows[:, j].reshape(shape).astype(self.dtype) for j in range(rows.shape[1])]

    async def triples(self, shape: Shape):
        a, b, c = self._take("triples", shape)
        return a, b, c

    async def square_pairs(self, shape: Shape):
        a, a2 = self._take("square_pairs", shape)
        return a, a2

    async def bits(self, shape: Shape):
        return self._take("bits", shape)[0]

    async def randoms(self, shape: Shape):
        return self._take("randoms", shape)[0]


async def fill_store(store: PrepStore, source: Preprocessing, kind: str, count: int) -> None:
    """Draw `count` elementwise items of `kind` from `source` and store them."""
    got = await getattr(source, kind)((count,))
    cols = got if isinstance(got, tuple) else (got,)
    store.write(kind, np.stack([np.asarray(c, dtype=np.uint64) for c in cols], axis=1))
