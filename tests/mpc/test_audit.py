"""The audit log (T26): signed hash chain, heads countersigned by the peers, anchor checks at
start-up, `smpc audit verify --peers`. Unit tests over an in-memory channel, then real daemons."""

import asyncio
import json
import os
import shutil
import sqlite3

import pytest

from mpc.cli.main import main
from mpc.node.anchor import (
    AuditAnchorError,
    anchor_path,
    exchange_heads,
    open_audit,
    read_anchor,
    verify_with_peers,
    write_anchor,
)
from mpc.node.audit import (
    AuditLog,
    AuditLogError,
    AuditLogMissing,
    _chain,
    entry_message,
    verify,
    xsign,
    xverify,
)
from network.keys import generate_keypair
from network.memory import MemoryNetwork

N = 3


class Banks:
    """N nodes' audit logs and keys, and jobs that end with the heads exchange."""

    def __init__(self, tmp_path):
        self.keys = [generate_keypair() for _ in range(N)]
        self.paths = []
        for i in range(N):
            d = tmp_path / f"bank{i}-state"
            d.mkdir()
            self.paths.append(d / "audit.db")
            AuditLog.create(self.paths[i], self.keys[i][0], party=i, consortium="t").close()
        self.jobs = 0

    def pub(self):
        return {i: k[1] for i, k in enumerate(self.keys)}

    def peer_keys(self, i):
        return {j: k for j, k in self.pub().items() if j != i}

    def open(self, i, init=False):
        return open_audit(self.paths[i], self.keys[i][0], party=i, consortium="t",
                          peer_keys=self.peer_keys(i), init=init)

    def job(self, parties=range(N)):
        """Every party appends its job entry, then all exchange heads; returns the results
        (an exception in place of a party's result)."""
        self.jobs += 1
        job_id = f"job{self.jobs}"

        async def run():
            net = MemoryNetwork(N, timeout=5)
            logs = [self.open(i) for i in parties]
            for i, log in zip(parties, logs, strict=True):
                log.append(job_id=job_id, manifest_hash="ab" * 32, decision="accepted",
                           peers=[j for j in range(N) if j != i], rounds=7, bytes=900,
                           outcome="done", reason="ok")
            try:
                return await asyncio.gather(*(
                    exchange_heads(net.channel(i), log, self.keys[i][0], self.peer_keys(i),
                                   job_id=job_id)
                    for i, log in zip(parties, logs, strict=True)), return_exceptions=True)
            finally:
                for log in logs:
                    log.close()

        return asyncio.run(run())


@pytest.fixture
def banks(tmp_path):
    b = Banks(tmp_path)
    for r in b.job() + b.job():
        assert not isinstance(r, BaseException), r
    return b


def _unlock(db):
    db.executescript("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")


def _rechain(path, key, edit_seq):
    """The strongest local attacker: holds the node's key, edits entry `edit_seq`, recomputes
    every later hash and re-signs it. The chain and the signatures verify afterwards."""
    log = AuditLog(path)
    party, prev = log.party, log.hash_at(edit_seq - 1)
    log.close()
    db = sqlite3.connect(path)
    _unlock(db)
    for seq, text in db.execute("SELECT seq, entry FROM audit WHERE seq >= ? ORDER BY seq",
                                (edit_seq,)).fetchall():
        e = json.loads(text)
        if seq == edit_seq:
            e["outcome"], e["reason"] = "refused", "policy.analyst: never ran"
        h = _chain(prev, e)
        db.execute("UPDATE audit SET entry = ?, hash = ?, sig = ? WHERE seq = ?",
                   (json.dumps(e, sort_keys=True, separators=(",", ":")), h,
                    xsign(key, entry_message(party, seq, h)), seq))
        prev = h
    db.commit()
    db.close()


def _tamper(banks, how, i=1):
    path = banks.paths[i]
    anchored = read_anchor(anchor_path(path))["seq"]
    if how == "rechain":
        _rechain(path, banks.keys[i][0], 1)
    elif how == "delete":
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(str(path) + suffix):
                os.remove(str(path) + suffix)
    else:
        db = sqlite3.connect(path)
        _unlock(db)
        keep = anchored - 1 if how == "truncate" else 0
        db.execute("DELETE FROM audit WHERE seq > ?", (keep,))
        db.commit()
        db.close()
    return anchored


# ------------------------------------------------------------------------ the chain ---
def test_chain_is_signed_and_cli_says_ok(tmp_path, capsys):
    b = Banks(tmp_path)
    log = b.open(0)
    for k in range(3):
        log.append(job_id=f"j{k}", decision="accepted", peers=[1, 2], rounds=k, outcome="done")
    log.close()
    res = verify(b.paths[0], b.keys[0][1])
    assert res.ok and res.entries == 3 and res.party == 0
    assert not verify(b.paths[0], b.keys[1][1]).ok  # pinned to another key: refused
    assert main(["audit", "verify", str(b.paths[0])]) == 0
    assert "ok, 3 entries" in capsys.readouterr().out
    # every entry carries an XEdDSA signature that libsodium's Ed25519 verify accepts
    db = sqlite3.connect(b.paths[0])
    seq, h, sig = db.execute("SELECT seq, hash, sig FROM audit WHERE seq = 2").fetchone()
    assert xverify(b.keys[0][1], entry_message(0, seq, h), sig)
    assert not xverify(b.keys[0][1], entry_message(1, seq, h), sig)
    assert not xverify(b.keys[0][1], entry_message(0, seq, h), sig[:-1] + bytes([sig[-1] ^ 1]))


def test_append_only_through_sqlite(tmp_path):
    b = Banks(tmp_path)
    log = b.open(0)
    log.append(job_id="j", outcome="done")
    with pytest.raises(sqlite3.DatabaseError):
        log.db.execute("UPDATE audit SET entry = '{}' WHERE seq = 1")
    with pytest.raises(sqlite3.DatabaseError):
        log.db.execute("DELETE FROM audit WHERE seq = 1")
    with pytest.raises(sqlite3.DatabaseError):
        log.db.execute("UPDATE meta SET v = '{}'")
    log.close()
    with pytest.raises(AuditLogError, match="another key"):
        AuditLog(b.paths[0], b.keys[1][0])
    with pytest.raises(AuditLogError, match="read-only"):
        AuditLog(b.paths[0]).append(job_id="x")


@pytest.mark.parametrize("tamper", ["edit", "delete", "swap", "rechain-without-key"])
def test_tampering_without_the_key_is_detected(tmp_path, tamper, capsys):
    b = Banks(tmp_path)
    log = b.open(0)
    for k in range(4):
        log.append(job_id=f"job{k}", rounds=10 + k, outcome="done")
    log.close()
    if tamper == "rechain-without-key":  # recomputed hashes, signed with another key
        _rechain(b.paths[0], generate_keypair()[0], 2)
    else:
        db = sqlite3.connect(b.paths[0])
        _unlock(db)
        if tamper == "edit":
            db.execute("UPDATE audit SET entry = replace(entry, '\"rounds\":11', '\"rounds\":99') "
                       "WHERE seq = 2")
        elif tamper == "delete":
            db.execute("DELETE FROM audit WHERE seq = 2")
        else:
            a, c = db.execute("SELECT entry FROM audit WHERE seq IN (2, 3) ORDER BY seq").fetchall()
            db.execute("UPDATE audit SET entry = ? WHERE seq = 2", c)
            db.execute("UPDATE audit SET entry = ? WHERE seq = 3", a)
        db.commit()
        db.close()
    res = verify(b.paths[0])
    assert not res.ok and res.first_bad == 2
    if tamper == "rechain-without-key":
        assert "signature" in res.problem
    assert main(["audit", "verify", str(b.paths[0])]) == 1
    assert "first bad entry: 2" in capsys.readouterr().err
    with pytest.raises(AuditLogError):
        b.open(0)


def test_entries_hold_no_values(tmp_path):
    b = Banks(tmp_path)
    with b.open(0) as log:
        with pytest.raises(AuditLogError):
            log.append(job_id="j", result=[1.5, 2.5])
        with pytest.raises(AuditLogError):
            log.append(job_id="j", peers=[0.5])
        with pytest.raises(AuditLogError):
            log.append(job_id="x" * 600)


# ----------------------------------------------------------------- countersignatures ---
def test_countersigned_heads_verify(banks):
    for i in range(N):
        log = AuditLog(banks.paths[i])
        entries = log.entries()
        # per job: the job entry, then one witness entry per peer (2 jobs, 2 peers each)
        assert [e["decision"] for e in entries] == ["accepted", "witness", "witness"] * 2
        a = read_anchor(anchor_path(banks.paths[i]))
        assert a["seq"] == 4 and a["head"] == log.hash_at(4)  # the second job's final entry
        assert sorted(a["countersigs"]) == [j for j in range(N) if j != i]
        for j in range(N):  # every peer stored this head in its own signed log
            if j != i:
                assert AuditLog(banks.paths[j]).witnessed(i)[:2] == (4, a["head"])
        log.close()
        banks.open(i).close()  # start-up check passes
        res = verify_with_peers(banks.paths[i], [banks.paths[j] for j in range(N) if j != i],
                                keys=banks.pub())
        assert res.ok, res.problem


def test_exchange_counts(banks):
    """One more job: 2 messages per peer and 2 rounds; the result names both peers."""
    from protocols.session import CountingChannel, Stats

    async def run():
        net = MemoryNetwork(N, timeout=5)
        stats = [Stats() for _ in range(N)]
        logs = [banks.open(i) for i in range(N)]
        for log in logs:
            log.append(job_id="job3", outcome="done")
        res = await asyncio.gather(*(exchange_heads(
            CountingChannel(net.channel(i), stats[i]), logs[i], banks.keys[i][0],
            banks.peer_keys(i), job_id="job3") for i in range(N)))
        for log in logs:
            log.close()
        return res, stats

    res, stats = asyncio.run(run())
    for i, r in enumerate(res):
        assert r.countersigned_by == tuple(j for j in range(N) if j != i) and not r.problems
        assert r.seq == 7
        assert stats[i].messages_sent == 2 * (N - 1)


@pytest.mark.parametrize("what", ["flip", "wrong-signer", "other-head"])
def test_tampered_countersignature_refused(banks, what, capsys):
    apath = anchor_path(banks.paths[1])
    a = read_anchor(apath)
    cs = dict(a["countersigs"])
    if what == "flip":
        cs[0] = cs[0][:5] + bytes([cs[0][5] ^ 1]) + cs[0][6:]
    elif what == "wrong-signer":  # bank2's countersignature presented as bank0's
        cs[0] = cs[2]
    else:  # a valid countersignature moved onto a lower head (to hide a truncation)
        log = AuditLog(banks.paths[1])
        write_anchor(apath, 1, 1, log.hash_at(1), cs)
        log.close()
        with pytest.raises(AuditAnchorError, match="does not verify"):
            banks.open(1)
        return
    write_anchor(apath, 1, a["seq"], a["head"], cs)
    with pytest.raises(AuditAnchorError, match="countersignature of party 0"):
        banks.open(1)
    assert main(["audit", "verify", str(banks.paths[1]), "--peers", str(banks.paths[0]),
                 str(banks.paths[2])]) == 1
    assert "countersignature of party 0" in capsys.readouterr().err


def test_forged_head_from_a_peer_is_not_countersigned(banks):
    """A head message signed by a key that is not the peer's pinned key is not witnessed."""
    async def run():
        net = MemoryNetwork(2, timeout=5)
        log = banks.open(0)
        log.append(job_id="job3", outcome="done")
        forged = generate_keypair()[0]
        h = os.urandom(32)
        await net.channel(1).send(0, "audit/head", json.dumps(
            {"seq": 99, "head": h.hex(), "sig": xsign(forged, entry_message(1, 99, h)).hex(),
             "seen": None}).encode())
        await net.channel(1).send(0, "audit/countersign", b"")
        res = await exchange_heads(net.channel(0), log, banks.keys[0][0], {1: banks.keys[1][1]})
        assert log.witnessed(1)[0] == 4  # unchanged
        log.close()
        return res

    res = asyncio.run(run())
    assert res.countersigned_by == ()
    assert any("not signed by its key" in p for p in res.problems)


# -------------------------------------------------------------------------- T26 ---
@pytest.mark.parametrize("how", ["rechain", "truncate", "empty", "delete"])
def test_rewrite_truncation_emptying_deletion_detected(banks, how, capsys):
    anchored = _tamper(banks, how)
    peers = [str(banks.paths[0]), str(banks.paths[2])]
    if how != "delete":  # the log alone still looks fine: only the anchors tell
        assert verify(banks.paths[1], banks.keys[1][1]).ok
    res = verify_with_peers(banks.paths[1], peers, keys=banks.pub(),
                            anchor=banks.paths[1].with_name("none"))  # the peers alone
    assert not res.ok
    if how in ("truncate", "empty"):
        assert "truncated" in res.problem
    elif how == "rechain":
        assert "rewritten" in res.problem and res.first_bad == 1
    assert main(["audit", "verify", str(banks.paths[1]), "--peers", *peers]) == 1
    with pytest.raises(AuditLogError) as e:  # start-up
        banks.open(1)
    assert isinstance(e.value, AuditLogMissing if how == "delete" else AuditAnchorError)
    if how == "delete":
        with pytest.raises(AuditAnchorError, match="deleted"):
            banks.open(1, init=True)  # the anchor remains: --init is refused too
    else:
        assert str(anchored) in str(e.value)


def test_anchor_removed_too_is_caught_by_the_peers(banks):
    """The attacker empties the log AND deletes the anchor file: start-up cannot know, but
    `verify --peers` can, and so does the next job: the peers return our own signed head,
    and the node whose log lost it raises AuditAnchorError (the daemon then stops)."""
    _tamper(banks, "delete")
    os.remove(anchor_path(banks.paths[1]))
    banks.open(1, init=True).close()  # a fresh log, nothing local to compare with
    res = verify_with_peers(banks.paths[1], [banks.paths[0], banks.paths[2]], keys=banks.pub())
    assert not res.ok and "truncated" in res.problem
    results = banks.job()
    assert isinstance(results[1], AuditAnchorError)
    assert "no longer holds" in str(results[1])
    assert not isinstance(results[0], BaseException) and not isinstance(results[2], BaseException)
    # the peers' evidence became bank1's anchor: it will not start on this log again
    assert read_anchor(anchor_path(banks.paths[1]))["seq"] == 4
    with pytest.raises(AuditAnchorError, match="truncated"):
        banks.open(1)


def test_rolled_back_log_is_not_countersigned(banks, tmp_path):
    """A log restored from an old copy (with its old anchor) passes the local checks; the peers
    refuse to countersign a head older than one they witnessed, and the node learns it."""
    old = tmp_path / "old"
    old.mkdir()
    # the state after job 1: rebuild bank1's log as it was (entries 1..3) with the key
    db = sqlite3.connect(banks.paths[1])
    rows = db.execute("SELECT entry FROM audit WHERE seq <= 3 ORDER BY seq").fetchall()
    db.close()
    shutil.copy(banks.paths[1], old / "audit.db")
    db = sqlite3.connect(old / "audit.db")
    _unlock(db)
    db.execute("DELETE FROM audit WHERE seq > 3")
    db.commit()
    db.close()
    assert len(rows) == 3
    shutil.copy(old / "audit.db", banks.paths[1])
    os.remove(anchor_path(banks.paths[1]))
    banks.open(1).close()  # local checks pass
    results = banks.job()
    assert isinstance(results[1], AuditAnchorError)
    with pytest.raises(AuditAnchorError, match="entry 4 differs"):  # the peers' evidence
        banks.open(1)
    for i in (0, 2):
        assert any("rolled back" in p for p in results[i].problems)
        assert AuditLog(banks.paths[i]).witnessed(1)[0] == 4  # still the old, higher head


def test_missing_log_needs_init(tmp_path):
    b = Banks(tmp_path)
    p = b.paths[0]
    os.remove(p)
    with pytest.raises(AuditLogMissing):
        b.open(0)
    log = b.open(0, init=True)
    assert log.head_record()[0] == 0
    log.close()
    assert verify(p, b.keys[0][1]).ok


# ------------------------------------------------------------ real daemon processes ---
@pytest.mark.timeout(120)
def test_daemons_countersign_and_refuse_a_tampered_log(tmp_path, capsys):
    """Three daemons run a job; each stores the peers' countersignatures of its final head.
    Then bank1's log is rewritten (re-signed with its key), cut, emptied or deleted: bank1
    refuses to start each time, and `smpc audit verify --peers` says so; the untouched log
    starts again."""
    import time

    from tests.mpc.test_node import Cluster, _manifest

    cl = Cluster(tmp_path)
    try:
        cl.start_all()
        c = cl.client()
        assert c.result(c.submit(_manifest()), timeout=60).outputs["count"] == [105]
        state = [tmp_path / f"bank{i}-state" for i in range(N)]
        t_end = time.monotonic() + 30
        while not all((s / "audit.anchor").exists() for s in state):
            assert time.monotonic() < t_end, "no anchor written"
            time.sleep(0.05)
    finally:
        cl.stop()
    keys = {}
    for i in range(N):
        a = read_anchor(state[i] / "audit.anchor")
        assert a["seq"] == 1 and sorted(a["countersigs"]) == [j for j in range(N) if j != i]
        res = verify(state[i] / "audit.db")
        assert res.ok and res.entries == 3  # the job entry and two witness entries
        keys[i] = res.public_key
    peers = [str(state[0] / "audit.db"), str(state[2] / "audit.db")]
    cfg1 = str(cl.info["configs"][1])
    assert main(["audit", "verify", str(state[1] / "audit.db"), "--peers", *peers,
                 "--config", cfg1]) == 0
    backup = tmp_path / "bank1-backup"
    shutil.copytree(state[1], backup)
    from network.keys import load_private_key

    key1 = load_private_key(tmp_path / "bank1.key")
    b = type("B", (), {"paths": {1: state[1] / "audit.db"}, "keys": {1: (key1, keys[1])}})
    for how in ("rechain", "truncate", "empty", "delete"):
        _tamper(b, how)
        capsys.readouterr()
        assert main(["audit", "verify", str(state[1] / "audit.db"), "--peers", *peers,
                     "--config", cfg1, "--anchor", str(tmp_path / "none")]) == 1, how
        seen = len(cl.log(1)) if 1 in cl.logs else 0
        proc = cl.start(1)
        assert proc.wait(30) == 2, how
        err = "AuditLogMissing" if how == "delete" else "AuditAnchorError"
        assert err in cl.log(1)[seen:], how
        shutil.rmtree(state[1])
        shutil.copytree(backup, state[1])
    cl.start(1)
    try:
        cl.wait_up(1)  # the genuine log starts
    finally:
        cl.stop()


@pytest.mark.timeout(120)
def test_daemon_stops_when_the_peers_show_its_log_lost_a_head(tmp_path):
    """Log AND anchor deleted, node re-initialised with --init: it starts (nothing local to
    compare with), but at its next job the peers return its own countersigned head, so it
    records the evidence, stops with exit code 3, and then refuses to start."""
    import time

    from tests.mpc.test_node import Cluster, _manifest

    cl = Cluster(tmp_path)
    state1 = tmp_path / "bank1-state"
    try:
        cl.start_all()
        c = cl.client()
        c.result(c.submit(_manifest()), timeout=60)
        t_end = time.monotonic() + 30
        while not all((tmp_path / f"bank{i}-state" / "audit.anchor").exists() for i in range(N)):
            assert time.monotonic() < t_end, "no anchor written"
            time.sleep(0.05)
        cl.stop()
        for f in ("audit.db", "audit.db-wal", "audit.db-shm", "audit.anchor"):
            if (state1 / f).exists():
                os.remove(state1 / f)
        cl.start(1)
        assert cl.procs[1].wait(30) == 2  # a missing log is not a fresh start
        for i in range(N):
            cl.start(i, *(["--init"] if i == 1 else []))
        for i in range(N):
            cl.wait_up(i)
        job = c.submit(_manifest("after"))
        assert cl.procs[1].wait(60) == 3
        from mpc.node.client import Client

        two = Client([cl.info["api"][0], cl.info["api"][2]], key=cl.info["analyst_key"])
        assert {b["status"] for b in two.status(job).values()} == {"done"}  # done everywhere
        db = sqlite3.connect(state1 / "jobs.db")
        assert db.execute("SELECT status FROM jobs WHERE job_id = ?", (job,)).fetchone() == ("done",)
        db.close()
        assert "audit.anchor" in cl.log(1)
        assert read_anchor(state1 / "audit.anchor")["seq"] == 1
        seen = len(cl.log(1))
        assert cl.start(1).wait(30) == 2
        assert "AuditAnchorError" in cl.log(1)[seen:]
    finally:
        cl.stop()
