"""The persistent store: integrity at load (T19) and use-once across crashes (T04)."""

import os
import shutil
import stat

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from preprocessing_helpers import make_scheme, reconstruct, run_all, sessions

from mpc.node.prepstore import PrepStore, StoredItems, StoredPreprocessing, fill_store
from protocols.errors import PreprocessingExhausted, StorageIntegrityError
from protocols.preprocessing.dn07 import DN07

KEY = bytes(range(32))
SID = b"session-0001"


def store(path, party=0, sid=SID, key=KEY, domain="Z2^64"):
    return PrepStore(path, key=key, party=party, session=sid, domain=domain)


def items(count=100, width=3):
    return np.arange(count * width, dtype=np.uint64).reshape(count, width)


def test_round_trip_mode_and_exhaustion(tmp_path):
    s = store(tmp_path)
    path = s.write("triples", items())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(s.paths("triples")[1]).st_mode) == 0o600
    b = s.open("triples")
    assert (b.take(10) == items()[:10]).all() and b.remaining == 90
    with pytest.raises(StorageIntegrityError, match="open elsewhere"):
        store(tmp_path).open("triples")  # a second opener is refused while b holds the batch
    b.close()
    assert (store(tmp_path).open("triples").take(5) == items()[10:15]).all()  # cursor persisted
    with pytest.raises(PreprocessingExhausted):
        store(tmp_path).open("triples").take(86)
    with pytest.raises(StorageIntegrityError):
        s.write("triples", items())  # never overwrite a batch


@pytest.mark.parametrize(
    "attack",
    ["flip_body", "flip_header", "flip_tag", "truncate", "append", "wrong_key", "other_party",
     "other_session", "other_domain", "swap_kind", "cursor_flip", "cursor_swap", "mode"],
)
def test_tampering_refused(tmp_path, attack):
    a = store(tmp_path / "a")
    a.write("triples", items())
    a.write("square_pairs", items(50, 2))
    data, cur = a.paths("triples")
    loader = a
    if attack.startswith("flip"):
        raw = bytearray(data.read_bytes())
        pos = {"flip_body": len(raw) - 40, "flip_header": 20, "flip_tag": len(raw) - 1}[attack]
        raw[pos] ^= 1
        data.write_bytes(bytes(raw))
    elif attack == "truncate":
        data.write_bytes(data.read_bytes()[:-8])
    elif attack == "append":
        data.write_bytes(data.read_bytes() + b"\0" * 8)
    elif attack == "wrong_key":
        loader = store(tmp_path / "a", key=b"k" * 32)
    elif attack in ("other_party", "other_session", "other_domain"):
        kw = {"other_party": {"party": 1}, "other_session": {"sid": b"session-0002"},
              "other_domain": {"domain": "GF(2^61-1)"}}[attack]
        b = store(tmp_path / "b", **kw)
        # the other node's file, renamed to where this node looks for its own
        b.write("triples", items())
        bd, bc = b.paths("triples")
        shutil.copy(bd, data)
        shutil.copy(bc, cur)
    elif attack == "swap_kind":
        sd, sc = a.paths("square_pairs")
        shutil.copy(sd, data)
        shutil.copy(sc, cur)
    elif attack == "cursor_flip":
        raw = bytearray(cur.read_bytes())
        raw[26] ^= 1
        cur.write_bytes(bytes(raw))
    elif attack == "cursor_swap":
        shutil.copy(a.paths("square_pairs")[1], cur)
    elif attack == "mode":
        os.chmod(data, 0o644)
    for p in (data, cur):
        if attack != "mode":
            os.chmod(p, 0o600)
    with pytest.raises(StorageIntegrityError):
        loader.open("triples")


class Crash(Exception):
    pass


class CrashingItems(StoredItems):
    crash_at: str | None = None

    def _fault(self, point):
        if point == CrashingItems.crash_at:
            CrashingItems.crash_at = None
            raise Crash(point)


class StoreMachine(RuleBasedStateMachine):
    """Take items, crash at random points (before or after the durable reservation),
    reload: no item is ever handed out twice, and nothing is handed out after a crash that
    was reserved before it."""

    @initialize()
    def setup(self):
        import tempfile

        self.dir = tempfile.mkdtemp()
        self.count = 200
        self.store = store(self.dir)
        self.store.write("bits", np.arange(self.count, dtype=np.uint64).reshape(-1, 1))
        self.handed: list[int] = []
        self.reload()

    def reload(self):
        if getattr(self, "items", None) is not None:
            self.items.close()  # the dead process's lock goes with it
        b = self.store.open("bits")
        self.items = CrashingItems(b.store, b.kind, b.items, b.file_id, b.reserved, b._lock)
        b._lock = None  # the lock now belongs to self.items

    @rule(k=st.integers(0, 30), crash=st.sampled_from([None, "before-reserve", "after-reserve"]))
    def take(self, k, crash):
        CrashingItems.crash_at = crash
        try:
            got = self.items.take(k)
        except PreprocessingExhausted:
            CrashingItems.crash_at = None
            assert k > self.items.remaining
            return
        except Crash:
            self.reload()  # the process died; the node restarts and reloads
            return
        self.handed.extend(int(v) for v in got[:, 0])

    @rule()
    def restart(self):
        self.reload()

    @invariant()
    def never_twice(self):
        assert len(self.handed) == len(set(self.handed))

    def teardown(self):
        self.items.close()
        shutil.rmtree(self.dir, ignore_errors=True)


TestStoreCrashes = StoreMachine.TestCase
TestStoreCrashes.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)


def test_stored_dn07_items_end_to_end(tmp_path):
    """Fill each party's store from DN07, then run from the stores: triples still correct."""
    sch = make_scheme("shamir", 3)
    ss = sessions(3, sch, lambda s: DN07(s, batch=64))

    async def fill(s):
        st_ = PrepStore(tmp_path / f"p{s.pid}", key=KEY, party=s.pid, session=SID, domain=s.domain.name)
        await fill_store(st_, s.prep, "triples", 64)
        return st_

    stores = run_all(ss, fill)
    views = [StoredPreprocessing(PrepStore(tmp_path / f"p{i}", key=KEY, party=i, session=SID,
                                           domain=sch.field.name)) for i in range(3)]
    got = run_all(views, lambda v: v.triples((8, 4)))
    for v in views:
        v.close()
    a, b, c = (reconstruct(sch, [g[j] for g in got]) for j in range(3))
    assert (sch.field.mul(a, b) == c).all()
    assert stores[0].open("triples").remaining == 32


def test_cursor_rollback_while_open_is_detected(tmp_path):
    """Restoring an older (authentic) cursor under an open batch would re-issue items: the
    batch re-reads the cursor before every reservation and refuses."""
    s = store(tmp_path)
    s.write("triples", items())
    b = s.open("triples")
    _, cur = s.paths("triples")
    old = cur.read_bytes()
    b.take(10)
    cur.write_bytes(old)
    with pytest.raises(StorageIntegrityError, match="cursor moved"):
        b.take(1)
    b.close()
