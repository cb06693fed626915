"""review4 (issue 16): the malicious vertical fraud_aggregate on an owner whose group column
holds keys outside parameters.groups.

mpc.node.fraud_jobs.check_data promises that such rows are counted in no group and are not
an error: a failure would tell the analyst, exactly and outside any DP accounting, whether
any row of the owner's column has a key outside the set the analyst chose (a membership
probe). The semi-honest job keeps that promise (a "no group" column). The malicious job
built G with one column per group only, so such a row was all zeros, failed the one-hot
check (row sum 1) and the job ended with OneHotError (input.onehot) blaming the honest
owner: the probe answered, and an honest bank accused of cheating."""

import numpy as np
import pytest
from malicious_helpers import run
from test_jobs import COEF, GROUPS, INTERCEPT, _data, _manifest, signer  # noqa: F401

from mpc.node.jobs import REGISTRY, JobContext
from mpc.node.manifest import sign_manifest
from protocols import malicious as mal
from protocols.arith.fixedpoint import FixedPoint

pytestmark = pytest.mark.timeout(120)

PARAMS = {"owner": "bank0", "coef": COEF, "intercept": INTERCEPT, "threshold": 0.5,
          "group_column": "merchant", "groups": GROUPS, "k_min": 1}


def _job(m, parts, extras, chunk):
    async def job(s):
        ctx = JobContext(s, m, ["bank0", "bank1", "bank2"], parts[s.pid], None,
                         extra=extras[s.pid], k_floor=1, group_chunk=chunk)
        outs = await REGISTRY["fraud_aggregate"].run(ctx)
        got = {}
        for name, o in outs.items():
            (v,) = await mal.open(s, o.share)
            got[name] = FixedPoint(s.domain, o.f).decode(v)
        return got

    return job


def test_malicious_fraud_aggregate_key_outside_groups_is_no_group(signer):  # noqa: F811
    """Rows 0..4 of the owner get key 11 (not in GROUPS = [3, 5, 7, 9]): the job completes on
    every party and releases the exact per-group counts over the other rows (in chunks of 30
    elements: 6 rows each with the "no group" column). Failed on main with OneHotError on
    every party."""
    X0, X1, g, z = _data()
    g = g.copy()
    g[:5] = 11
    m = sign_manifest(_manifest("fraud_aggregate", PARAMS), signer[1])
    parts, extras = [X0, X1, None], [{"merchant": g.astype(float)}, {}, {}]
    res, errs, _ = run(_job(m, parts, extras, 30))
    assert errs == [None] * 3, errs
    flags = z > 0
    want = [int(flags[g == q].sum()) for q in GROUPS]
    for pid in range(3):
        rel = np.round(res[pid]["released"]).astype(int).tolist()
        cnt = np.round(res[pid]["counts"]).astype(int).tolist()
        assert rel == [int(w >= 1 and (g == q).sum() >= 1) for w, q in zip(want, GROUPS, strict=True)]
        assert cnt == [w if r else 0 for w, r in zip(want, rel, strict=True)]


def test_malicious_fraud_aggregate_fractional_key_is_no_group_as_semi_honest(signer):  # noqa: F811
    """review5: a key 3.5 is in no group for the semi-honest job and check_data (float
    comparison, `fraud_jobs.onehot`); the malicious vertical job cast the column to int64
    first, so 3.5 became 3 and those rows were counted in group 3 (a different answer to the
    same query under the malicious setting). Failed on main (group 3 counted rows 0..4)."""
    X0, X1, g, z = _data()
    g = g.astype(float)
    g[:5] = 3.5
    m = sign_manifest(_manifest("fraud_aggregate", PARAMS), signer[1])
    parts, extras = [X0, X1, None], [{"merchant": g}, {}, {}]
    res, errs, _ = run(_job(m, parts, extras, 30))
    assert errs == [None] * 3, errs
    flags = z > 0
    want = [int(flags[g == q].sum()) for q in GROUPS]
    sizes = [int((g == q).sum()) for q in GROUPS]
    for pid in range(3):
        rel = np.round(res[pid]["released"]).astype(int).tolist()
        cnt = np.round(res[pid]["counts"]).astype(int).tolist()
        assert rel == [int(w >= 1 and n >= 1) for w, n in zip(want, sizes, strict=True)]
        assert cnt == [w if r else 0 for w, r in zip(want, rel, strict=True)]
