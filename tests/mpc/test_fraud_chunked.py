"""hard4 (issue 16): the vertical fraud_aggregate inputs, checks and counts the owner's
group matrix in row chunks of at most ctx.group_chunk elements (rows x groups), so that a
party never holds rows x groups at once (10^5 x 4096 was ~100 GB per party). The released
values must be those of the job in one piece; the chunk count is exact (rows and groups are
public) and each chunk costs a fixed number of rounds."""

import numpy as np
import pytest
from malicious_helpers import run
from test_jobs import COEF, GROUPS, INTERCEPT, _data, _manifest, signer  # noqa: F401

import mpc
from mpc.node.fraud_jobs import row_chunks
from mpc.node.jobs import REGISTRY, JobContext, finish_outputs
from mpc.node.manifest import sign_manifest
from protocols import core
from protocols import malicious as mal
from protocols.arith.fixedpoint import FixedPoint

pytestmark = pytest.mark.timeout(300)

PARAMS = {"owner": "bank0", "coef": COEF, "intercept": INTERCEPT, "threshold": 0.5,
          "group_column": "merchant", "groups": GROUPS, "k_min": 5}


def test_row_chunks():
    assert row_chunks(40, 5, 25) == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 25), (25, 30),
                                     (30, 35), (35, 40)]
    assert row_chunks(41, 5, 25)[-1] == (40, 41) and len(row_chunks(41, 5, 25)) == 9
    assert row_chunks(40, 5) == [(0, 40)]
    assert row_chunks(3, 5000, 25) == [(0, 1), (1, 2), (2, 3)]  # at least one row
    assert row_chunks(0, 5) == [(0, 0)]


def _job(m, parts, extras, chunk, logs, security):
    opener = mal.open if security == "malicious" else core.open

    async def job(s):
        def log(step, **kw):
            if step == "group":
                logs.append(kw["chunks"])
        ctx = JobContext(s, m, ["bank0", "bank1", "bank2"], parts[s.pid], None, log=log,
                         extra=extras[s.pid], k_floor=1, group_chunk=chunk)
        outs = await REGISTRY["fraud_aggregate"].run(ctx)
        got = {}
        for name, o in outs.items():
            (v,) = await opener(s, o.share)
            got[name] = FixedPoint(s.domain, o.f).decode(v)
        return got, s.stats.rounds

    return job


@pytest.mark.parametrize("security", ["semi-honest", "malicious"])
def test_chunked_group_matrix_same_release(signer, security):  # noqa: F811
    """40 rows, 4 groups: chunks of 25 elements (5 rows with the "no group" column, in both
    modes since review4) against one piece: the same released
    counts and flags, the exact chunk count, and a fixed number of rounds per extra chunk."""
    X0, X1, g, z = _data()
    g = np.where(g == 7, 3, g) if security == "malicious" else g  # malicious: every key a group
    m = sign_manifest(_manifest("fraud_aggregate", PARAMS), signer[1])
    parts, extras = [X0, X1, None], [{"merchant": g.astype(float)}, {}, {}]
    out = {}
    for chunk in (1 << 20, 25):
        logs: list[int] = []
        if security == "malicious":
            res, errs, _ = run(_job(m, parts, extras, chunk, logs, security))
            assert errs == [None] * 3, errs
        else:
            res = mpc.run_local(3, _job(m, parts, extras, chunk, logs, security)).results
        # review4: the malicious job has the "no group" column too (a key outside groups
        # is counted nowhere instead of failing the one-hot check): width K + 1 in both modes
        width = len(GROUPS) + 1
        want_chunks = len(row_chunks(40, width, chunk))
        assert logs == [want_chunks] * 3, logs
        out[chunk] = res
    one, many = out[1 << 20], out[25]
    assert len(row_chunks(40, 5, 25)) == 8 and len(row_chunks(40, 4, 25)) == 7
    for pid in range(3):
        assert {k: np.asarray(v).tolist() for k, v in one[pid][0].items()} == \
            {k: np.asarray(v).tolist() for k, v in many[pid][0].items()}, pid
    flags = z > 0
    by = finish_outputs("fraud_aggregate", many[0][0], PARAMS)["by_group"]
    for q in GROUPS:
        n_flag = int(flags[g == q].sum())
        assert by[str(q)] == (n_flag if (g == q).sum() >= 5 and n_flag >= 5 else None), (q, by)
    assert any(v is not None for v in by.values())
    extra = many[0][1] - one[0][1]
    # semi-honest (Z_2^64): input 1, one-hot check 3, matmul 1; malicious: group_totals' 28
    # (input 4, check and refreshes, matmul) + 2 to refresh the running sums
    per = {"semi-honest": 5, "malicious": 30}[security]
    n_extra = len(row_chunks(40, len(GROUPS) + 1, 25)) - 1  # review4: K + 1 in both modes
    assert extra == per * n_extra, (extra, n_extra)
