"""The order every node runs queued jobs in (mpc.node.runner.order_key, Node._next_job), and the
job session id's binding of every node's nonce and attempt number."""

import os
from collections import OrderedDict
from itertools import count
from types import SimpleNamespace

import pytest

from mpc.node.daemon import Node
from mpc.node.manifest import generate_signing_key, sign_manifest
from mpc.node.runner import JobAbortError, Run, Runner, order_key

SEED, _ = generate_signing_key()
_keys = count()


def _signed(not_after: int, want=lambda job_id: True):
    while True:
        m = sign_manifest({"computation": "aggregate_sum", "idempotency_key": f"k{next(_keys)}",
                           "recipients": ["analyst"], "consortium": "demo",
                           "inputs": {"bank0": {"source": "tx", "columns": ["a"]}},
                           "not_after": not_after}, SEED)
        if want(m.job_id):
            return m


def test_a_job_submitted_first_is_not_overtaken_by_a_stream_of_lower_ids():
    """Every node's worker picks Node._next_job. The job submitted first has a high job id;
    after it, a new job with a lower id arrives before every pick (a later submission: a
    later not_after with the same lifetime). It must run first, not wait forever."""
    t0 = 1_900_000_000
    first = _signed(t0 + 600, lambda j: j >= "f")
    node = SimpleNamespace(pending=OrderedDict())
    node.pending[first.job_id] = Run(first, os.urandom(16))
    ran = []
    for k in range(40):
        later = _signed(t0 + 600 + 1 + k, lambda j: j < first.job_id)
        node.pending[later.job_id] = Run(later, os.urandom(16))
        nxt = Node._next_job(node)
        node.pending.pop(nxt)
        ran.append(nxt)
    assert ran[0] == first.job_id
    # ties in not_after: the lower job id, on every node
    a, b = _signed(t0), _signed(t0)
    assert order_key(a) < order_key(b) if a.job_id < b.job_id else order_key(b) < order_key(a)


def test_an_earlier_deadline_goes_first_and_order_is_the_same_everywhere():
    t0 = 1_900_000_000
    jobs = [_signed(t0 + d) for d in (300, 100, 200, 100)]
    for perm in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):  # arrival orders differ per node
        node = SimpleNamespace(pending=OrderedDict())
        for i in perm:
            node.pending[jobs[i].job_id] = Run(jobs[i], b"r" * 16)
        picked = []
        while node.pending:
            picked.append(node.pending.pop(Node._next_job(node)).m.not_after)
        assert picked == [t0 + 100, t0 + 100, t0 + 200, t0 + 300]


def _views(n, attempts):
    return {j: {"nonce": os.urandom(16).hex(), "attempt": attempts[j]} for j in range(n)}


def test_job_sid_binds_every_nodes_nonce_and_attempt():
    r = Run(_signed(1_900_000_000), os.urandom(16), attempt=2)
    views = _views(3, [2, 2, 1])
    sid = Runner._job_sid(None, r, views)
    for j in range(3):
        changed = {k: dict(v) for k, v in views.items()}
        changed[j]["attempt"] += 1
        assert Runner._job_sid(None, r, changed) != sid
        changed = {k: dict(v) for k, v in views.items()}
        changed[j]["nonce"] = os.urandom(16).hex()
        assert Runner._job_sid(None, r, changed) != sid
    for bad in ({"nonce": "zz" * 16, "attempt": 1}, {"nonce": os.urandom(16).hex()},
                {"nonce": os.urandom(16).hex(), "attempt": True},
                {"nonce": os.urandom(16).hex(), "attempt": 0}, {"attempt": 1}):
        with pytest.raises(JobAbortError):
            Runner._job_sid(None, r, {**views, 1: bad})
