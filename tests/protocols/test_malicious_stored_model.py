"""Issue 16: a stored (shared) model scored under malicious Shamir (in-process, three
parties). The model's plain shares [w] (as mpc.node.models keeps them) get fresh MACs under
the job's key (chida18.authenticate) and are scored with fraud_malicious.shared_model_scores:
flags equal the plaintext fixed-point computation; a party whose stored share is off by
delta (share + delta, otherwise honest) is caught with CheatingDetectedError on every
honest party and nothing is revealed."""

from __future__ import annotations

import numpy as np
import pytest
from malicious_helpers import run

from protocols import malicious as mal
from protocols.apps import fraud_malicious as fm
from protocols.apps.ml.malicious import MSharedModel
from protocols.errors import CheatingDetectedError
from protocols.session import Share

pytestmark = pytest.mark.timeout(120)

F = 16
RNG = np.random.default_rng(7)  # test data only
N = 12
XS = [RNG.normal(size=(N, 2)), RNG.normal(size=(N, 1)), RNG.normal(size=(N, 1))]
COEF = np.array([0.8, -1.1, 1.5, 0.6])
B0 = -0.4


def _want_flags():
    X = np.concatenate(XS, axis=1)
    xe = np.rint(X * 2**F).astype(np.int64)
    ce = np.rint(COEF * 2**F).astype(np.int64)
    z = (xe @ ce) / 2.0**F + np.rint(B0 * 2**F)  # before truncation's +-1 rounding
    return z, (z > 0).astype(np.int64)


async def _stored_shares(s) -> Share:
    """Plain degree-t shares of the encoded (coef, intercept), as a store holds them: dealt
    by party 0 (a checked input), verified, then only the [x] component kept."""
    enc = np.rint(np.append(COEF, B0) * 2**F).astype(np.int64)
    w = await mal.input_unchecked(s, s.domain.from_int(enc) if s.pid == 0 else None, 0, (5,))
    await mal.verify(s)  # the "training job" ends: its key is opened
    return w.x


def _job(delta: int = 0, cheater: int = 2):
    async def job(s):
        w = await _stored_shares(s)
        if s.pid == cheater and delta:  # its ModelStore returns share + delta
            bump = np.zeros(5, dtype=np.int64)
            bump[0] = delta
            w = Share(s.domain.add(w.data, s.domain.from_int(bump)), s)
        m = await mal.authenticate(s, w)
        model = MSharedModel("logistic", m[:4], m[4:].reshape(()), 4, F)
        sc = await fm.score(s, model, XS[s.pid], owner=0, threshold=0.5, reveal_to=0, proba=True)
        return sc.revealed_flags

    return job


def test_stored_model_flags_equal_the_plaintext_fixed_point():
    res, errs, _ = run(_job())
    assert errs == [None] * 3, errs
    assert res[1] is None and res[2] is None
    z, want = _want_flags()
    sure = np.abs(z) > 2  # the probabilistic truncation rounds z by at most 1 unit
    assert sure.sum() >= N - 1
    assert np.array_equal(res[0][sure], want[sure])


def test_a_shifted_stored_share_is_caught_nothing_revealed():
    """Party 2's share of coef[0] is off by 2^16 (1.0); it runs the protocol honestly on it.
    The honest parties' shares fix the model, the shift is an additive error on the
    authentication's reduction: every honest party raises CheatingDetectedError at the
    verification before the flags are revealed to party 0."""
    res, errs, _ = run(_job(delta=1 << F))
    for i in (0, 1):
        assert isinstance(errs[i], CheatingDetectedError), errs
        assert errs[i].code == "security.cheating_detected"
    assert res[0] is None  # nothing revealed to the owner

