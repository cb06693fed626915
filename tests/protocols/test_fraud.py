"""Fraud scoring with features split across banks, and k-suppressed flagged counts."""

import numpy as np
import pytest

from mpc.cli.datasets import make_fraud
from mpc.local import run_local
from protocols.apps.fraud import flagged_counts, score
from protocols.apps.ml import train

pytestmark = pytest.mark.timeout(120)

DATA = make_fraud(600, n_banks=3, fraud_rate=0.03, seed=5)
PARTS = DATA.vertical()
XV = DATA.vertical_columns()


def _pub_model():
    rng = np.random.default_rng(1)
    return rng.normal(size=XV.shape[1]), -2.0


@pytest.mark.parametrize("min_on", ["members", "flagged"])
def test_public_model_flags_and_counts_exact(min_on):
    coef, b = _pub_model()
    thr = 0.3
    z0 = XV @ coef + b
    per_group = [int((z0[DATA.merchant == g] > np.log(thr / (1 - thr))).sum()) for g in range(8)]
    # a k that suppresses some groups and releases others
    k = 40 if min_on == "members" else int(np.median(per_group)) + 1

    async def job(s):
        r = await score(s, (coef, b), PARTS[s.pid][0], owner=0, threshold=thr, reveal_to=0, proba=True)
        counts = await flagged_counts(s, r.flags, DATA.merchant, k_min=k, reveal_to=0, min_on=min_on)
        return r.revealed_flags, counts

    res = run_local(3, job, seed=2).results
    assert res[1] == (None, None) and res[2] == (None, None)  # only the querying bank learns
    flags, counts = res[0]
    z = XV @ coef + b
    ref = (1 / (1 + np.exp(-z)) > thr).astype(int)
    close = np.abs(z - np.log(thr / (1 - thr))) < 1e-3  # fixed-point ties may go either way
    assert (flags[~close] == ref[~close]).all()
    for g in np.unique(DATA.merchant):
        m = DATA.merchant == g
        big = m.sum() >= k if min_on == "members" else flags[m].sum() >= k
        if big:
            assert counts[int(g)] == int(flags[m].sum())  # exactly the plaintext count
        else:
            assert int(g) not in counts  # suppressed: never revealed
    assert 0 < len(counts) < len(np.unique(DATA.merchant))


def test_shared_model_scores_revealed_to_owner_only():
    hp = dict(batch_size=100, epochs=2, lr=0.5, class_weight="balanced")

    async def job(s):
        m = await train(s, "logistic", PARTS[s.pid][0], PARTS[s.pid][1], partition="vertical", **hp)
        r = await score(s, m, PARTS[s.pid][0], owner=0, threshold=0.5, reveal_to=0, proba=True,
                        reveal_scores=True)
        return r.revealed_scores, r.revealed_flags, await m.reveal(s)

    res = run_local(3, job, seed=4).results
    assert res[1][:2] == (None, None)
    p, flags, (coef, b) = res[0]
    ref = 1 / (1 + np.exp(-(XV @ coef + b)))
    assert np.abs(p - ref).max() < 2e-3
    assert ((p > 0.5) == flags.astype(bool)).mean() > 0.99


def test_broken_threshold_detected():
    """Power check: counts at a different threshold differ from the plaintext reference."""
    coef, b = _pub_model()

    async def job(s):
        r = await score(s, (coef, b), PARTS[s.pid][0], owner=0, threshold=0.3, reveal_to=0, proba=True)
        return await flagged_counts(s, r.flags, DATA.merchant, k_min=1, reveal_to=None)

    counts = run_local(3, job, seed=2).results[1]
    wrong = (1 / (1 + np.exp(-(XV @ coef + b))) > 0.6).astype(int)
    assert any(counts[int(g)] != wrong[DATA.merchant == g].sum() for g in np.unique(DATA.merchant))
