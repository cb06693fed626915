"""The online protocols run end to end on the dealer node (preprocessing="dealer", additive
over Z_2^64), with the insecure trusted dealer never asked for anything: truncation,
fixed-point products, ltz / ltz_mul / eqz, both sigmoids and logistic regression. The
dealer's fast-path kinds (trunc_triples, ltz_tuples, edaBits and boolean triples,
matrix_trunc_triples) are checked to be the ones used, not a fallback."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

import mpc
from protocols import comparison, core, fixed, nonlinear, truncation
from protocols.apps.ml import train
from protocols.apps.ml.reference import fit_sgd_plain
from protocols.arith.fixedpoint import DEFAULT_F

pytestmark = pytest.mark.timeout(60)

F = DEFAULT_F


def inputs(N, seed):
    g = np.random.default_rng(seed)  # plaintext test data only
    X = np.round(g.uniform(-6, 6, N) * 2**F).astype(np.int64)
    Y = np.round(g.uniform(-4, 4, N) * 2**F).astype(np.int64)
    X[:9] = [0, -1, 1, 2**F // 2, -(2**F) // 2, 2**F // 2 + 1, -(2**F) // 2 - 1, 3 << F, -(3 << F)]
    Y[:3] = [0, 5, -7]
    Y[20:30] = X[20:30]  # equal pairs for eqz
    return X, Y


@pytest.mark.parametrize("n", [2, 3])
def test_online_protocols_on_the_dealer_node(n, no_trusted_dealer):
    X, Y = inputs(80, n)
    kinds = {}

    async def job(s):
        assert s.prep.source.name == "dealer"
        s.prep.log = []
        x = await core.input(s, s.domain.from_int(X) if s.pid == 0 else None, 0)
        y = await core.input(s, s.domain.from_int(Y) if s.pid == 1 else None, 1)
        lt, lty = await comparison.ltz_mul(s, x, y)
        outs = [
            await truncation.trunc(s, x, F),
            await fixed.mul(s, x, y),
            await comparison.ltz(s, x),
            lt, lty,
            await comparison.eqz(s, x - y),
            await nonlinear.sigmoid_piecewise(s, x),
            await nonlinear.sigmoid(s, x),
        ]
        kinds[s.pid] = {k for k, _ in s.prep.log}
        opened = await core.open(s, *outs)
        return [np.array(s.domain.to_signed(v), dtype=object) for v in opened]

    r = mpc.run_local(n, job, scheme="additive", preprocessing="dealer", seed=5)
    Xo, Yo = X.astype(object), Y.astype(object)
    for t, m, lt, lt2, lty, eq, sgp, sg in r.results:
        assert all(v - x // 2**F in (0, 1) for v, x in zip(t, Xo, strict=True))  # stochastic rounding
        assert all(v - (x * y) // 2**F in (0, 1) for v, x, y in zip(m, Xo, Yo, strict=True))
        assert (lt == (X < 0)).all() and (lt2 == (X < 0)).all()
        assert (lty == np.where(X < 0, Yo, 0)).all()
        assert (eq == (X == Y)).all()
        assert (sgp == np.clip(Xo + 2 ** (F - 1), 0, 2**F)).all()  # exact on its definition
        want = 1 / (1 + np.exp(-X / 2**F))
        assert np.abs(sg.astype(float) / 2**F - want).max() <= 2**-F + 1e-4  # nonlinear.sigmoid's bound
    for p in range(n):
        assert {"trunc_triples", "ltz_tuples", "edabits", "bool_triples", "triples"} <= kinds[p]


def test_logistic_regression_on_the_dealer_node(no_trusted_dealer):
    X, Y = load_breast_cancer(return_X_y=True)
    Xs, ys = X[:150, :6], Y[:150]
    scale = 10.0 ** np.floor(np.log10(np.abs(Xs).max(0)))
    hp = dict(batch_size=30, epochs=2, lr=0.5, feature_scale=scale)
    rows = np.array_split(np.arange(len(Xs)), 3)
    kinds = set()

    async def job(s):
        s.prep.log = []
        m = await train(s, "logistic", Xs[rows[s.pid]], ys[rows[s.pid]], partition="horizontal", **hp)
        kinds.update(k for k, _ in s.prep.log)
        return await m.reveal(s)

    c, b = mpc.run_local(3, job, scheme="additive", preprocessing="dealer", seed=3).results[0]
    cf, bf = fit_sgd_plain(Xs, ys, loss="logistic", **hp)
    assert np.allclose(c * scale, cf * scale, atol=0.02) and abs(b - bf) < 0.02
    assert {"matrix_trunc_triples", "ltz_tuples"} <= kinds
