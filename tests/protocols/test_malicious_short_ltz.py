"""Shorter malicious comparisons for values whose range is proven (malperf2, issue 16):
`prepare_batch(..., ltz_bits={l: count})` prepares ltz masks of width l (l - 1 + kappa + 1
checked bits instead of 64 + kappa), `clip_many(..., bits=l)` and the sigmoid use them.
Results equal the default width's, the masks come from the width's own pool, the costs are
exact, a cheater in the short comparison is caught; and the trainers' widths are the
bounds `sgd_plan` and the standardisation prove."""

from __future__ import annotations

import numpy as np
import pytest
from malicious_helpers import run

from protocols import malicious as mal
from protocols.apps.ml import malicious as mlmal
from protocols.apps.ml.sgd import batches, learning_rates
from protocols.arith.field import Mersenne127
from protocols.errors import CheatingDetectedError
from protocols.malicious import compare as mc
from protocols.malicious.batch import clip_many, prepare_batch

pytestmark = pytest.mark.timeout(120)

E = 16
L = 20  # the short width: |x - lo|, |hi - x| < 2^19
A = np.array([-(1 << 17), -7, -3, 0, 3, 4, 1 << 17, 5], dtype=object)


def _reduce_bytes(M, n, pid):  # as test_malicious_compare: one DN07 reduction of M elements
    bounds = np.linspace(0, M, n + 1).astype(np.int64)
    mine = int(bounds[pid + 1] - bounds[pid])
    return (M + (n - 2) * mine) * E


def _levels(w):
    blocks = -(-w // mc.BLOCK)
    out = []
    while blocks > 2:
        h = (blocks + 1) // 2
        out.append(2 * h)
        blocks = h
    return out + ([1] if blocks == 2 else [])


async def clip_job(s, bits=L):
    D = s.domain
    x = await mal.input(s, D.from_int(A) if s.pid == 0 else None, 0, A.shape, bits=L)
    await prepare_batch(s, {}, 0, ltz_bits={bits: 2 * A.size} if bits else None)
    left = mc.prepared(s, "ltz", bits=bits)
    b0 = s.stats.copy()
    (c,) = await clip_many(s, [(x, -3, 3)], bits=bits)
    d = s.stats - b0
    after = (mc.prepared(s, "ltz", bits=bits), mc.prepared(s, "ltz"))
    (v,) = await mal.open(s, c)
    return D.to_signed(v).tolist(), left, after, d.rounds, d.bytes_sent


def test_short_clip_exact_and_from_its_pool():
    """clip_many at l = 20: the same clip as at the default width, 2N masks taken from the
    l = 20 pool (none from the default one). Rounds: x re-keyed 2 (the preparation's
    verification retired its key), ltz 1 + 2 * 3 (w = 19 positions, 5 blocks: levels of 6,
    4, 1 products per element instead of 29 in 4 levels at l = 64), the selects' product 2;
    bytes: x's re-keying, c and one reduction per level, the product."""
    res, errs, _ = run(clip_job)
    assert errs == [None] * 3, errs
    want = [max(-3, min(3, int(a))) for a in A]
    N = 2 * A.size
    for pid, (v, left, after, rounds, nbytes) in enumerate(res):
        assert v == want
        assert left == N and after == (0, 0)
        assert _levels(L - 1) == [6, 4, 1]
        assert rounds == 2 + (1 + 2 * 3) + 2
        ltz_bytes = 2 * N * E + sum(_reduce_bytes(2 * r * N, 3, pid) for r in _levels(L - 1))
        assert nbytes == _reduce_bytes(A.size, 3, pid) + ltz_bytes + _reduce_bytes(2 * N, 3, pid)
    default, _, _ = run(lambda s: clip_job(s, bits=None))
    assert [r[0] for r in default] == [r[0] for r in res]


@pytest.mark.parametrize("cheat,check", [
    (("mcmp", [0]), "open"),  # its share of the short comparison's masked opening
    (("mking#5", [0]), "mac"),  # a checked product of the masks' random bits (xor_bits, offline)
])
def test_cheater_in_short_comparison_caught(cheat, check):
    res, errs, _ = run(clip_job, cheat=cheat)
    assert res == [None] * 3
    for pid in (0, 1):
        assert isinstance(errs[pid], CheatingDetectedError), errs[pid]
        assert errs[pid].code == "security.cheating_detected"
    assert any(errs[pid].check == check for pid in (0, 1))


def test_trainer_widths_are_the_proven_bounds():
    """The bench's logistic job (2000 rows, 10 features, batch 128, lr 0.5, 1 epoch): the
    sigmoid compares z +- 1/2 at 51 bits ((d z_bound + 1) w_max 2^32 = 2^49.4), the clip of
    the standardised rows at 39 bits (ISTD_MAX 2^32 + z_bound 2^16 < 2^38); both below
    value_bits (64) and both bounds hold with the ulp slack."""
    D, f, N, d = Mersenne127(), 16, 2000, 10
    sched = batches(N, 128, 1, 0)
    plan = mlmal.sgd_plan(D, f, d=d, x_bound=float(mlmal.z_bound(N)), y_bound=1.0, loss="logistic",
                          sizes=[len(i) for i in sched], rates=learning_rates(0.5, "constant", len(sched), 1, 0.0),
                          cmax=1.0, l2=0.0)
    assert plan.w_clip is None and plan.w_max >= plan.w_bound > 0 and plan.x_bound == mlmal.z_bound(N)
    zb = plan.z_bits(D, f, d)
    assert zb == 51
    assert (d * mlmal.z_bound(N) + 1) * plan.w_max * 2.0 ** (2 * f) + 2.0 ** (2 * f - 1) < 2.0 ** (zb - 1)
    W = mal.range_bits(D)
    xb = mlmal._xstd_bits(D, W, N, f)
    assert xb == 39
    assert mlmal.ISTD_MAX * 2**W + 1 + (mlmal.z_bound(N) << f) < 2 ** (xb - 1)


def test_istd_bound_holds_for_every_clipped_variance():
    """review5: the 39-bit clip of the standardised rows (`_xstd_bits`) rests on 1/sd <
    ISTD_MAX after `inv_sqrt` and two Newton steps, for ANY var in the clipped range
    [0, 2^NORM_HI) -- a cheater's moment inputs choose var freely there. The checked pipeline
    (malicious inv_sqrt + refine_inv_sqrt, as prepare_horizontal runs it) on var = 0, every
    power of two +-2 ulp of the range (the normalisation's boundaries) and the top: the
    largest 1/sd is 36 (var = 0: start 16, then 24, 36), below ISTD_MAX = 37; above 2^-8 it
    is within 1% of var^-1/2."""
    from protocols.apps.ml.data import REFINE_EXTRA
    from protocols.malicious.batch import refresh_many
    from protocols.malicious.nonlinear import inv_sqrt, refine_inv_sqrt

    f = 16
    top = (1 << (16 + f)) - 1
    grid = {0, 1, 2, top - 1, top}
    grid |= {(1 << k) + d for k in range(16 + f + 1) for d in (-2, -1, 0, 1, 2) if 0 <= (1 << k) + d <= top}
    V = np.array(sorted(grid), dtype=object)

    async def job(s):
        D = s.domain
        v = await mal.input(s, D.from_int(V) if s.pid == 0 else None, 0, V.shape, bits=16 + f + 2)
        y0 = await inv_sqrt(s, v, f)
        v, y0 = await refresh_many(s, v, y0)
        (o,) = await mal.open(s, await refine_inv_sqrt(s, v, y0, f, REFINE_EXTRA))
        return D.to_signed(o)

    res, errs, _ = run(job)
    assert errs == [None] * 3, errs
    y = np.array(res[0], dtype=float) / 2.0 ** (f + REFINE_EXTRA)
    assert y.max() < mlmal.ISTD_MAX and y[0] == y.max()  # var = 0 is the worst case
    var = np.array(V, dtype=float) / 2.0**f
    big = var >= 2.0**-8
    assert np.all(np.abs(y[big] * np.sqrt(var[big]) - 1) < 0.01)
