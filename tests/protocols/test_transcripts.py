"""T03: a coalition's view reveals nothing beyond the output.

Three parties; party 2 is the coalition. Two input assignments of the honest parties with the
same output (x0 * x1 + x2 = 22 in both): A = (3, 5), B = (5, 3), x2 = 7. Each of N array
elements is an independent run. A classifier trained on party 2's view (every value it
received, as byte features, plus pairwise differences of received values) must not tell A
from B (AUC <= 0.55). Positive controls: a preprocessing source that skips the masks
(a = b = 0) and one that reuses one triple for two products must be caught (AUC >= 0.9).
"""

import asyncio
import dataclasses

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score

from mpc.local import close_sessions, open_sessions
from network.channel import Channel
from protocols import beaver, core
from protocols.preprocessing.base import Preprocessing

N = 3000


class Recording(Channel):
    """Party 2's view: per tag, the sum of every array it sent once and received under that
    tag (for an opening that is the opened value; for an input, the share it got)."""

    def __init__(self, inner):
        self.inner, self.pid, self.n, self.by_tag = inner, inner.pid, inner.n, {}

    @property
    def timeout(self):
        return self.inner.timeout

    def _add(self, tag, arr):
        # an opening of several arrays travels packed in one message: split it back
        if isinstance(arr, np.ndarray) and arr.ndim == 1 and arr.size and arr.size % N == 0:
            for i, part in enumerate(np.split(arr, arr.size // N)):
                prev = self.by_tag.get((tag, i))
                self.by_tag[(tag, i)] = np.array(part) if prev is None else prev + part

    async def send(self, peer, tag, payload):
        await self.inner.send(peer, tag, payload)
        if peer == min(j for j in range(self.n) if j != self.pid):  # own share counted once
            self._add(tag, payload)

    async def recv(self, peer, tag):
        got = await self.inner.recv(peer, tag)
        self._add(tag, got)
        return got

    @property
    def seen(self):
        return [self.by_tag[t] for t in sorted(self.by_tag)]

    async def close(self):
        await self.inner.close()


class ZeroMasks(Preprocessing):
    name = "broken: no masks"

    def __init__(self, domain):
        self.domain = domain

    async def triples(self, shape):
        z = self.domain.zeros(shape)
        return z, z.copy(), z.copy()


class ReusedTriple(Preprocessing):
    name = "broken: one triple for every product"

    def __init__(self, inner):
        self.inner, self.first = inner, None

    async def triples(self, shape):
        if self.first is None:
            self.first = await self.inner.triples(shape)
        return self.first


async def _views(assignment, broken, seed):
    sessions = await open_sessions(3, seed=seed)
    if broken == "zero":
        sessions = [dataclasses.replace(s, prep=ZeroMasks(s.domain)) for s in sessions]
    elif broken == "reuse":
        sessions = [dataclasses.replace(s, prep=ReusedTriple(s.prep)) for s in sessions]
    rec = Recording(sessions[2].channel)
    sessions[2] = dataclasses.replace(sessions[2], channel=rec)
    inputs = {0: assignment[0], 1: assignment[1], 2: 7}

    async def job(s):
        xs = []
        for p in range(3):
            mine = s.domain.from_int(np.full(N, inputs[p])) if s.pid == p else None
            xs.append(await core.input(s, mine, p))
        z = await beaver.mul(s, xs[0], xs[1])
        z2 = await beaver.mul(s, xs[1], xs[0])  # the same product again: 2 triples normally
        (out,) = await core.open(s, z + xs[2] + (z2 - z))
        return out

    outs = await asyncio.gather(*(job(s) for s in sessions))
    await close_sessions(sessions)
    assert (outs[2].view(np.int64) == 22).all()
    return rec.seen


def _features(seen):
    cols = []
    for v in seen:
        cols += [v & np.uint64(0xFF), v >> np.uint64(56)]
    for i in range(len(seen)):
        for j in range(i + 1, len(seen)):
            d = seen[i] - seen[j]
            cols += [d & np.uint64(0xFF), d >> np.uint64(56)]
    return np.stack(cols, axis=1).astype(np.float64)


def _auc(broken=None, seed=0) -> float:
    fa = _features(asyncio.run(_views((3, 5), broken, seed)))
    fb = _features(asyncio.run(_views((5, 3), broken, seed + 1)))
    X = np.vstack([fa, fb])
    y = np.r_[np.zeros(len(fa)), np.ones(len(fb))]
    idx = np.random.default_rng(seed).permutation(len(y))  # test-side shuffling only
    X, y = X[idx], y[idx]
    half = len(y) // 2
    clf = RandomForestClassifier(n_estimators=60, max_depth=8, random_state=seed, n_jobs=1)
    clf.fit(X[:half], y[:half])
    return roc_auc_score(y[half:], clf.predict_proba(X[half:])[:, 1])


@pytest.mark.timeout(120)
def test_coalition_view_is_independent_of_honest_inputs():
    aucs = [_auc(seed=s) for s in (1, 2, 3)]
    assert sum(a <= 0.55 for a in aucs) >= 2, aucs


@pytest.mark.timeout(120)
@pytest.mark.parametrize("broken", ["zero", "reuse"])
def test_positive_controls_are_caught(broken):
    aucs = [_auc(broken, seed=s) for s in (1, 2, 3)]
    assert sum(a >= 0.9 for a in aucs) >= 2, aucs
