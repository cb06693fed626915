"""Fraud jobs with malicious security (protocols.apps.fraud_malicious): flags equal the
plaintext computation on the same encoding; a bank's out-of-range input and an owner's
non-one-hot group row (e_t + k e_d) abort with a typed input error naming the owner on every
party; a cheater in the checks' products is caught (security.cheating_detected)."""

from __future__ import annotations

import numpy as np
import pytest
from malicious_helpers import run

from protocols import malicious as mal
from protocols.apps import fraud_malicious as fm
from protocols.apps.fraud import OneHotError
from protocols.errors import CheatingDetectedError
from protocols.malicious import chida18

pytestmark = pytest.mark.timeout(300)

F = 16
RNG = np.random.default_rng(11)  # test data only
N = 24
XS = [RNG.normal(size=(N, 2)), RNG.normal(size=(N, 1)), RNG.normal(size=(N, 1))]
COEF = np.array([0.8, -1.1, 1.5, 0.6])
B0 = -0.4
GROUPS = np.array([10, 20, 30])
KEYS = RNG.choice(GROUPS, size=N)


def _want_flags(thr=0.5):
    parts = [XS[0] @ COEF[:2], XS[1] @ COEF[2:3], XS[2] @ COEF[3:]]
    z = sum(np.rint(p * 2**F).astype(np.int64) for p in parts) + np.int64(np.rint(B0 * 2**F))
    t = np.log(thr / (1 - thr))
    return (z > np.int64(np.rint(t * 2**F))).astype(np.int64)


def test_score_flags_exact_to_the_owner_only():
    async def job(s):
        sc = await fm.score(s, (COEF, B0), XS[s.pid], owner=0, threshold=0.5, reveal_to=0, proba=True)
        return sc.revealed_flags

    res, errs, _ = run(job)
    assert errs == [None] * 3
    assert res[1] is None and res[2] is None
    assert np.array_equal(res[0], _want_flags())


async def aggregate_job(s, G_rows=None, k=2):
    sc = await fm.score(s, (COEF, B0), XS[s.pid], owner=0, threshold=0.5, reveal_to=0, proba=True,
                        _reveal=False)
    G = None
    if s.pid == 0:
        G = (KEYS[:, None] == GROUPS[None, :]).astype(np.int64)
        if G_rows is not None:
            G = G.copy()
            G[0] = G_rows
        G = s.domain.from_int(G)
    kept, released = await fm.group_counts(s, sc.flags, G, 0, len(GROUPS), k)
    kv, rv = await mal.open(s, kept, released)
    return s.domain.to_signed(kv).astype(np.int64), s.domain.to_signed(rv).astype(np.int64)


def test_group_counts_with_suppression():
    flags = _want_flags()
    k = 4
    want_c = np.array([int(flags[KEYS == g].sum()) for g in GROUPS])
    want_n = np.array([int((KEYS == g).sum()) for g in GROUPS])
    rel = ((want_c >= k) & (want_n >= k)).astype(np.int64)
    res, errs, _ = run(lambda s: aggregate_job(s, k=k))
    assert errs == [None] * 3
    for kv, rv in res:
        assert np.array_equal(rv, rel) and np.array_equal(kv, want_c * rel)


def test_non_onehot_row_is_refused_naming_the_owner():
    """The owner's row e_t + k e_d (the T28 attack: it would read row d's flag in group d's
    count): OneHotError (input.onehot) naming party 0 on every party; nothing opened."""
    bad = np.array([1, 4096, 0])
    res, errs, _ = run(lambda s: aggregate_job(s, G_rows=bad))
    assert res == [None] * 3
    for e in errs:
        assert isinstance(e, OneHotError) and e.code == "input.onehot", e
        assert "party 0" in str(e)


async def range_job(s, cheat_bits=False):
    """Party 2 (a modified bank) inputs its partial score's bits with one 'bit' = 2^20, i.e.
    a value far outside the declared range."""
    if s.pid == 2 and cheat_bits:
        orig = fm.input_bits

        async def cheating_input_bits(s2, vals, owners, count, bits=fm.RANGE_BITS):
            D = s2.domain
            got, sts = {}, []
            for o in owners:
                mine = None
                if o == s2.pid:
                    b = np.zeros((bits, count), dtype=np.int64)
                    b[3, 0] = 1 << 20
                    mine = D.from_int(b)
                got[o], st = await chida18.input_announced(s2, mine, o, (bits, count))
                sts.append(st)
            await chida18.agree_statuses(s2, list(owners), sts, bits=bits)  # as input_bits
            from protocols.malicious.batch import concat

            B = concat([got[o].reshape(1, bits, count) for o in owners], 0)
            sq = await mal.mul(s2, B, B - 1)
            await fm.zero_check_each(s2, [sq[i] for i in range(len(owners))], "range")
            raise AssertionError("unreachable: the check fails")

        fm_input_bits = cheating_input_bits
    else:
        fm_input_bits = orig = fm.input_bits
    del orig
    table = await fm.agree_ints(s, np.array([XS[s.pid].shape[1], N]))
    holders = [j for j in range(s.n) if table[j, 0] > 0]
    partial = np.rint(XS[s.pid] @ np.ones(XS[s.pid].shape[1]) * 2**F).astype(np.int64)
    return await fm_input_bits(s, partial, holders, N)


def test_out_of_range_input_refused():
    res, errs, _ = run(lambda s: range_job(s, cheat_bits=True))
    assert res == [None] * 3
    for pid in (0, 1):
        assert isinstance(errs[pid], fm.PartialScoreRangeError), errs[pid]
        assert errs[pid].code == "input.range"
        assert errs[pid].owners == (2,) and "[2]" in str(errs[pid])  # the cheater, only it


def test_cheater_in_the_range_check_product_caught():
    """A changed share in the bits' check product (bits * (bits - 1); mking#0-2 are the three
    banks' inputs): caught at the verification before the coin is opened."""
    res, errs, _ = run(lambda s: range_job(s), cheat=("mking#3", None))
    assert res == [None] * 3
    for pid in (0, 1):
        assert isinstance(errs[pid], CheatingDetectedError), errs[pid]
