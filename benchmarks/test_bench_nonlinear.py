"""Throughput of fixed-point multiplication, comparison, sigmoid and reciprocal: 3 parties in
one process, batches of 10^5 (additive over Z_2^64; Shamir over GF(2^127-1) for fixed-point
mul and comparisons, 10^4 for its sigmoid and reciprocal, whose many field products are
~10x slower than the ring's; ops/s is what to compare).

Every preprocessing item an operation uses is prefetched before each timed run (the sequence
is recorded in an untimed first run), so the figures are the online phase only.

Targets (issue 5): >= 5e6 fixed-point mul/s, >= 2e5 comparisons/s. "ltz_bits33" is ltz with
a declared width (|x| < 2^32, l = 33: one AND level fewer on GF(p)).
"""

import numpy as np
import pytest

from benchmarks.online import OnlineBench
from protocols import comparison, core, fixed, nonlinear
from protocols.arith.field import Mersenne127

F = 16
SIZES = {  # (additive, shamir)
    "fixed_mul": (10**5, 10**5),
    "ltz": (10**5, 10**5),
    "ltz_bits33": (10**5, 10**5),  # declared |x| < 2^32 (the data are below 2^23)
    "sigmoid": (10**5, 10**4),
    "reciprocal": (10**5, 10**4),
}


def _bench(scheme):
    kw = {"domain": Mersenne127()} if scheme == "shamir" else {}
    return OnlineBench(3, scheme, **kw)


@pytest.mark.parametrize("scheme", ["additive", "shamir"])
@pytest.mark.parametrize("op", list(SIZES))
def test_nonlinear_throughput(benchmark, scheme, op):
    N = SIZES[op][0 if scheme == "additive" else 1]
    bench = _bench(scheme)
    g = np.random.default_rng(0)  # plaintext benchmark data only
    X = np.rint(g.uniform(0.01, 100, N) * 2**F).astype(np.int64)
    Y = np.rint(g.uniform(-100, 100, N) * 2**F).astype(np.int64)

    async def inputs(s):
        x = await core.input(s, s.domain.from_int(X) if s.pid == 0 else None, 0)
        y = await core.input(s, s.domain.from_int(Y) if s.pid == 1 else None, 1)
        return x, y

    xy = bench.run(inputs)
    fns = {
        "fixed_mul": lambda s: fixed.mul(s, *xy[s.pid]),
        "ltz": lambda s: comparison.ltz(s, xy[s.pid][1]),
        "ltz_bits33": lambda s: comparison.ltz(s, xy[s.pid][1], bits=33),
        "sigmoid": lambda s: nonlinear.sigmoid(s, xy[s.pid][1]),
        "reciprocal": lambda s: nonlinear.reciprocal(s, xy[s.pid][0]),
    }

    logs = bench.record(fns[op])

    def setup():
        bench.prefetch(logs)

    rounds = []

    def run():
        before = [s.stats.copy() for s in bench.sessions]
        bench.run(fns[op])
        rounds.append((bench.sessions[0].stats - before[0]).rounds)

    benchmark.pedantic(run, setup=setup, rounds=3, warmup_rounds=0)
    benchmark.extra_info.update(
        op=op, size=N, parties=3, scheme=scheme, rounds=rounds[-1],
        ops_per_s=N / benchmark.stats.stats.median,
    )
    bench.close()
