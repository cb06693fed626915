"""DN07 (PRSS) over GF(2^127 - 1) supplies the fused truncation's `matrix_trunc_triples`:
the items' relations, truncation.sub_trunc_matmul on a field in one round, and dealer-free
Shamir training equal to the dealer path with one round less per iteration."""

import numpy as np
import pytest
from preprocessing_helpers import reconstruct, run_all, sessions

import mpc
from protocols import core
from protocols.apps.ml import train
from protocols.arith.field import Mersenne127
from protocols.errors import PreprocessingExhausted
from protocols.preprocessing.dn07 import DN07
from protocols.sharing.schemes import ShamirShares
from protocols.truncation import KAPPA, sub_trunc_matmul, value_bits

pytestmark = pytest.mark.timeout(120)


def dn07(n, batch=20000):
    sch = ShamirShares(Mersenne127(), n, (n - 1) // 2)
    return sch, sessions(n, sch, lambda s: DN07(s, batch=batch))


@pytest.mark.parametrize("n", [3, 5])
def test_matrix_trunc_triples_relations(n):
    sch, ss = dn07(n)
    F = sch.field
    f = 36
    bits = value_bits(F, KAPPA) + KAPPA
    res = run_all(ss, lambda s: s.prep.matrix_trunc_triples((7, 5), (5,), f))
    A, B, C, r, r_hi, AR = (reconstruct(sch, [x[i] for x in res]) for i in range(6))
    assert A.shape == (7, 5) and B.shape == (5,) and C.shape == (7,) and AR.shape == (7,)
    assert (F.matmul(A, B) == C).all() and (F.matmul(A, r_hi) == AR).all()
    ri, hi = F.to_int(r), F.to_int(r_hi)
    assert (ri < (1 << bits)).all() and (ri >> f == hi).all()
    with pytest.raises(PreprocessingExhausted):
        run_all(ss[:1], lambda s: s.prep.matrix_trunc_triples((7, 5), (4,), f))


@pytest.mark.parametrize("broken", [False, True])
def test_sub_trunc_matmul_field_one_round(broken):
    """y = v - trunc(u) (floor or floor + 1) and x @ y exactly, in one round; the broken
    variant drops the A @ r_hi correction from the item, which must give a wrong product."""
    sch, ss = dn07(3)
    F = sch.field
    g = np.random.default_rng(1)  # plaintext test data only
    X = g.integers(-2**20, 2**20, (6, 4))
    V = g.integers(-2**30, 2**30, 4)
    U = g.integers(-2**50, 2**50, 4)
    f = 20

    if broken:
        for s in ss:
            orig = s.prep.matrix_trunc_triples

            async def bad(*a, orig=orig):
                item = await orig(*a)
                return (*item[:5], F.zeros(item[5].shape))

            s.prep.matrix_trunc_triples = bad

    async def job(s):
        x = await core.input(s, F.from_int(X) if s.pid == 0 else None, 0)
        v = await core.input(s, F.from_int(V) if s.pid == 0 else None, 0)
        u = await core.input(s, F.from_int(U) if s.pid == 0 else None, 0)
        before = s.stats.copy()
        y, z = await sub_trunc_matmul(s, x, v, u, f)
        d = s.stats - before
        oy, oz = await core.open(s, y, z)
        return F.to_signed(oy), F.to_signed(oz), d

    res = run_all(ss, job)
    y, z, d = res[0]
    want = V.astype(object) - (U.astype(object) >> f)
    assert all(w - a in (0, 1) for a, w in zip(y, want, strict=True))
    assert (np.array(z, dtype=object) == X.astype(object) @ np.array(y, dtype=object)).all() != broken
    assert d.rounds == 1 and d.bytes_sent == 2 * (6 * 4 + 2 * 4) * 16


def data(N=240, d=3, seed=4):
    g = np.random.default_rng(seed)  # plaintext test data only
    y = (g.random(N) < 0.5).astype(np.int64)
    X = g.normal(0, 1, (N, d)) + 0.9 * (2 * y[:, None] - 1)
    return X, y


def test_dealer_free_shamir_training_equals_dealer_path():
    """Logistic regression over GF(2^127 - 1), 3 parties: DN07 with PRSS and the fused
    truncation reaches the same accuracy as the trusted dealer, with exactly one round
    less per iteration after the first (the dealer has no field matrix_trunc_triples: it
    takes the two-round fallback)."""
    X, y = data()
    parts = np.array_split(np.arange(len(y)), 3)
    hp = {"batch_size": 40, "lr": 0.5, "epochs": 1}
    iters = 6

    def job(s):
        async def run(s):
            Xl, yl = X[parts[s.pid]], y[parts[s.pid]]
            before = s.stats.copy()
            m = await train(s, "logistic", Xl, yl, partition="horizontal", **hp)
            coef, b = await m.reveal(s)
            return coef, b, (s.stats - before).rounds

        return run(s)

    out = {}
    for src in ("trusted_dealer", "dn07"):
        r = mpc.run_local(3, job, scheme="shamir", domain=Mersenne127(), preprocessing=src, seed=2)
        coef, b, rounds = r.results[0]
        out[src] = (float((((X @ coef + b) > 0) == y).mean()), rounds)
    assert out["dn07"][0] == pytest.approx(out["trusted_dealer"][0], abs=0.01)
    assert out["dn07"][0] > 0.8
    assert out["trusted_dealer"][1] - out["dn07"][1] == iters - 1
