"""Non-linear functions against numpy float64: errors within the documented bounds on random
points and edge cases, exact rounds per docstring, both schemes."""

import numpy as np
import pytest

import mpc
from protocols import core
from protocols import nonlinear as NL
from protocols.arith.field import Mersenne127

F = 16
ULP = 2.0**-F
BIG = 2.0**40  # large representable magnitudes (the fixed-point range is 2^47)


def sig(x):
    return 0.5 * (1 + np.tanh(np.asarray(x) / 2))


# name: (random points generator, edge cases, reference, error bound(x, ref), rounds ring/field)
FUNCS = {
    "sigmoid_piecewise": (lambda g, N: g.uniform(-3, 3, N), [0, -0.5, 0.5, -BIG, BIG, -1, 1],
                          lambda x: np.clip(x + 0.5, 0, 1), lambda x, r: 0 * x, (3, 8)),
    "exp": (lambda g, N: g.uniform(-18, 14, N), [0, -16, 12, -BIG, BIG, -1, 1, 2**-F],
            lambda x: np.exp(np.clip(x, -16, 12)), lambda x, r: 2e-4 * r + ULP, (19, 24)),
    "sigmoid": (lambda g, N: g.uniform(-20, 20, N), [0, -16, 16, -BIG, BIG, -ULP, ULP, 3],
                sig, lambda x, r: 1e-4 + ULP + 0 * x, (33, 38)),
    "reciprocal": (lambda g, N: 2 ** g.uniform(-8, 16, N), [2**-8, 2**16 - ULP, 1, 0.5, 3, 1e-3, -5, 0, BIG],
                   lambda x: 1 / np.clip(x, 2**-8, 2**16 - ULP), lambda x, r: 2e-5 * r + ULP, (21, 26)),
    "inv_sqrt": (lambda g, N: 2 ** g.uniform(-8, 16, N), [2**-8, 2**16 - ULP, 1, 0.25, 2, -5, 0, BIG],
                 lambda x: 1 / np.sqrt(np.clip(x, 2**-8, 2**16 - ULP)), lambda x, r: 2e-5 * r + ULP, (27, 32)),
    "sqrt": (lambda g, N: 2 ** g.uniform(-8, 16, N), [2**-8, 2**16 - ULP, 1, 0.25, 2, -5, 0, BIG],
             lambda x: np.sqrt(np.clip(x, 2**-8, 2**16 - ULP)), lambda x, r: 2e-5 * r + ULP, (29, 34)),
}

# (scheme, n, points): 10^4 random points per function, both schemes, every party count the
# issue names (Shamir needs n >= 3), and additive sharing over GF(p) too
CASES = [("additive", 2, 10_000), ("additive", 3, 10_000), ("additive", 5, 10_000),
         ("shamir", 3, 10_000), ("shamir", 5, 10_000), ("additive-gf", 3, 10_000)]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("scheme,n,N", CASES)
@pytest.mark.parametrize("name", list(FUNCS))
def test_function_within_documented_error(name, scheme, n, N):
    gen, edges, ref, bound, rounds = FUNCS[name]
    g = np.random.default_rng(abs(hash((name, n))) % 2**32)
    xs = np.concatenate([np.array(edges, dtype=np.float64), gen(g, N)])
    X = np.rint(xs * 2**F).astype(np.int64)
    xt = X / 2**F  # the value the shares encode

    async def job(s):
        x = await core.input(s, s.domain.from_int(X) if s.pid == 0 else None, 0)
        before = s.stats.copy()
        z = await getattr(NL, name)(s, x)
        delta = s.stats - before
        (o,) = await core.open(s, z)
        return np.array(s.domain.to_signed(o), dtype=np.float64) / 2**F, delta.rounds

    dom = None if scheme == "additive" else Mersenne127()  # "additive-gf": additive over GF(p)
    res = mpc.run_local(n, job, scheme=scheme.removesuffix("-gf"), seed=5, domain=dom)
    got, r = res.results[0]
    want = ref(xt)
    err = np.abs(got - want)
    worst = int(np.argmax(err - bound(xt, want)))
    assert (err <= bound(xt, want) + 1e-12).all(), (xt[worst], got[worst], want[worst])
    assert r == rounds[0 if scheme == "additive" else 1]


def test_bounds_have_power():
    """The checks above would catch a wrong function: the piecewise sigmoid is 0.3775 away
    from the logistic function at x = 1/2, far outside the smooth sigmoid's bound."""
    x = np.array([0.5])
    assert np.abs(np.clip(x + 0.5, 0, 1) - sig(x)).max() > 1e-4 + ULP
    assert abs((1 - sig(0.5)) - 0.3775) < 1e-4
