"""Logistic regression over shares vs the same algorithm in float64 and vs scikit-learn."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

import mpc
from mpc.local import run_local
from protocols import core
from protocols.apps.ml import train
from protocols.apps.ml.reference import fit_sgd_plain
from protocols.apps.ml.sgd import sgd
from protocols.arith.field import Mersenne127
from protocols.arith.fixedpoint import FixedPoint
from protocols.session import Share

pytestmark = pytest.mark.timeout(120)

X, Y = load_breast_cancer(return_X_y=True)
SCALE = 10.0 ** np.floor(np.log10(np.abs(X).max(0)))  # public units, order of magnitude only
HP = dict(batch_size=64, epochs=10, lr=0.5)


def _acc(c, b, Xe=X, ye=Y):
    return float(((Xe @ c + b > 0) == ye).mean())


def _secure(partition, scheme, Xd, yd, n=3, **hp):
    rows = np.array_split(np.arange(len(Xd)), n)
    cols = np.array_split(np.arange(Xd.shape[1]), n)

    async def job(s):
        if partition == "horizontal":
            m = await train(s, "logistic", Xd[rows[s.pid]], yd[rows[s.pid]], partition=partition, **hp)
        else:
            h = {k: v for k, v in hp.items() if k != "feature_scale"}
            m = await train(s, "logistic", Xd[:, cols[s.pid]], yd if s.pid == n - 1 else None,
                            partition=partition, **h)
        return await m.reveal(s)

    dom = Mersenne127() if scheme == "shamir" else None
    return run_local(n, job, scheme=scheme, domain=dom, seed=3).results[0]


@pytest.mark.parametrize("partition", ["horizontal", "vertical"])
def test_breast_cancer_matches_float_and_sklearn(partition):
    c, b = _secure(partition, "additive", X, Y, feature_scale=SCALE, **HP)
    cf, bf = fit_sgd_plain(X, Y, loss="logistic", feature_scale=SCALE, **HP)
    Xs = StandardScaler().fit_transform(X)
    sk = LogisticRegression(max_iter=5000).fit(Xs, Y).score(Xs, Y)
    assert abs(_acc(c, b) - _acc(cf, bf)) <= 0.01
    assert abs(_acc(c, b) - sk) <= 0.02


@pytest.mark.parametrize("partition", ["horizontal", "vertical"])
def test_shamir_small(partition):
    Xs, ys = X[:160, :8], Y[:160]
    hp = dict(batch_size=32, epochs=3, lr=0.5, feature_scale=SCALE[:8])
    c, b = _secure(partition, "shamir", Xs, ys, **hp)
    cf, bf = fit_sgd_plain(Xs, ys, loss="logistic", **hp)
    assert abs(_acc(c, b, Xs, ys) - _acc(cf, bf, Xs, ys)) <= 0.01
    assert np.allclose(c * SCALE[:8], cf * SCALE[:8], atol=0.05)


def test_options_smooth_l2_schedule_class_weight():
    Xs, ys = X[:200], Y[:200]
    hp = dict(batch_size=50, epochs=2, lr=0.5, l2=0.01, schedule="epoch_decay", lr_decay=0.5,
              class_weight="balanced", sigmoid="smooth", feature_scale=SCALE)
    c, b = _secure("horizontal", "additive", Xs, ys, **hp)
    cf, bf = fit_sgd_plain(Xs, ys, loss="logistic", **hp)
    assert np.allclose(c * SCALE, cf * SCALE, atol=0.02)
    assert abs(b - bf) < 0.02


def test_wrong_reference_is_detected():
    """Power check: a float run with a different learning rate lands measurably elsewhere."""
    Xs, ys = X[:200], Y[:200]
    hp = dict(batch_size=50, epochs=2, lr=0.5, feature_scale=SCALE)
    c, b = _secure("horizontal", "additive", Xs, ys, **hp)
    cf, _ = fit_sgd_plain(Xs, ys, loss="logistic", **{**hp, "lr": 0.1})
    assert not np.allclose(c * SCALE, cf * SCALE, atol=0.02)


@pytest.mark.parametrize("partition", ["horizontal", "vertical"])
def test_fraud_data_accuracy_and_auc(partition):
    from sklearn.metrics import roc_auc_score

    import mpc
    from mpc.cli.datasets import make_fraud

    d = make_fraud(6000, seed=0)
    hp = dict(batch_size=128, epochs=5, lr=0.5)
    if partition == "horizontal":
        parts, Xd, order = d.horizontal(), d.X_home(), d.horizontal_order()
    else:
        parts, Xd, order = d.vertical(), d.vertical_columns(), np.arange(len(d.y))
    m = mpc.fit_local("logistic", parts, partition=partition, seed=1, **hp)
    cf, bf = fit_sgd_plain(Xd[order], d.y[order], loss="logistic", **hp)
    Xs = StandardScaler().fit_transform(Xd)
    sk = LogisticRegression(max_iter=3000).fit(Xs, d.y)
    auc = roc_auc_score(d.y, m.decision_function(Xd))
    assert abs(m.score(Xd, d.y) - _acc(cf, bf, Xd, d.y)) <= 0.01
    assert abs(auc - roc_auc_score(d.y, Xd @ cf + bf)) <= 0.01
    assert abs(m.score(Xd, d.y) - sk.score(Xs, d.y)) <= 0.02
    assert abs(auc - roc_auc_score(d.y, sk.decision_function(Xs))) <= 0.02



@pytest.mark.parametrize("prep", ["trusted_dealer", "ot"])
def test_rounds_and_bytes_per_iteration(prep):
    """The sgd module docstring's costs on Z_2^64 with the dealer: 5 rounds per iteration
    (4 in the first, 1 for the last update), (n-1) 8 (2|B|d' + 2d' + 14|B|) bytes per
    iteration, d' = d + 1. The dealer-free OT source supplies ltz_tuples and
    matrix_trunc_triples too: the same rounds and bytes, and the same model."""
    N, d, B = 64, 3, 16
    Xs = X[:N, :d] / SCALE[:d]
    Xs = (Xs - Xs.mean(0)) / Xs.std(0)
    ys = Y[:N]

    def job_for(epochs):
        async def job(s):
            x = Share(s.domain.from_int(np.rint(Xs * 2**16).astype(np.int64)) if s.pid == 0
                      else s.domain.zeros(Xs.shape), s)
            y = Share(s.domain.from_int(ys) if s.pid == 0 else s.domain.zeros(N), s)
            w = await sgd(s, x, y, loss="logistic", y_is_bits=True, batch_size=B, epochs=epochs, lr=0.5)
            st = s.stats.copy()
            (out,) = await core.open(s, w)
            return FixedPoint(s.domain, 16).decode(out), st

        return job

    (w1, st1), (w2, st2) = (mpc.run_local(3, job_for(e), seed=2, preprocessing=prep).results[0] for e in (1, 2))
    k, dp = N // B, d + 1  # iterations per epoch, columns with the intercept
    assert st1.rounds == 5 * k
    assert st2.rounds - st1.rounds == 5 * k
    assert st2.bytes_sent - st1.bytes_sent == k * 2 * 8 * (2 * B * dp + 2 * dp + 14 * B)
    for w, e in ((w1, 1), (w2, 2)):
        cf, bf = fit_sgd_plain(Xs, ys, loss="logistic", batch_size=B, epochs=e, lr=0.5, standardize=False)
        assert np.allclose(w[:-1], cf, atol=0.01) and abs(w[-1] - bf) < 0.01


def test_class_weights_forms():
    from protocols.apps.ml.sgd import class_weights
    from protocols.errors import ConfigError

    assert class_weights(None, None, 10) == (1.0, 1.0)
    assert class_weights("balanced", 2, 10) == (10 / 16, 10 / 4)
    assert class_weights({1: 3.0}, None, 10) == (1.0, 3.0)
    with pytest.raises(ConfigError, match="class_weight"):  # a typo: not 'balanced'
        class_weights("balance", 2, 10)
    with pytest.raises(ConfigError, match="both classes"):
        class_weights("balanced", 0, 10)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("hp", [{"epochs": 10**7, "batch_size": 1},
                                {"epochs": 2 * 10**6, "batch_size": 64}])
def test_an_analysts_huge_schedule_is_refused_before_it_is_built(hp):
    """review2: epochs and batch_size come from a job's manifest; the schedule (one index
    array per step, one permutation per epoch) was built in full before anything refused it,
    so epochs = 10^7 with batch_size = 1 blocked the node until memory ran out. Now a typed
    ConfigError on every party, before any allocation (this test would run out of memory or
    its timeout otherwise)."""
    from protocols.apps.ml.sgd import MAX_STEPS, batches
    from protocols.errors import ConfigError

    with pytest.raises(ConfigError, match="SGD steps"):
        batches(100, hp["batch_size"], hp["epochs"], 0)
    assert len(batches(100, 1, MAX_STEPS // 100, None)) == MAX_STEPS  # the bound itself passes
    with pytest.raises(ConfigError, match="row visits"):  # few steps, huge permutations
        batches(10**6, 10**6, 200, 0)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), (rng.random(40) < 0.5).astype(float)

    async def job(s):
        mine = (X[:20], y[:20]) if s.pid == 0 else (X[20:], y[20:])
        return await train(s, "logistic", *mine, partition="horizontal", **hp)

    with pytest.raises(ConfigError, match="SGD steps"):
        run_local(2, job)
