import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from mpc.cli.datasets import make_fraud


def _auc(X, y):
    Xs = StandardScaler().fit_transform(X)
    return roc_auc_score(y, LogisticRegression(max_iter=2000).fit(Xs, y).decision_function(Xs))


def test_seeded_and_realistic():
    a, b = make_fraud(5000, seed=3), make_fraud(5000, seed=3)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.X, make_fraud(5000, seed=4).X)
    assert 0.01 <= a.y.mean() <= 0.03
    amount = np.expm1(a.X_txn[:, 0])
    assert np.percentile(amount, 99.9) > 10 * np.median(amount)  # heavy tail


def test_partitions():
    d = make_fraud(3000, n_banks=4, seed=1)
    h = d.horizontal()
    assert len(h) == 4 and sum(len(y) for _, y in h) == 3000
    assert all(X.shape[1] == 9 for X, _ in h)
    v = d.vertical()
    assert [y is not None for _, y in v] == [True, False, False, False]
    assert np.array_equal(np.hstack([X for X, _ in v]), d.vertical_columns())


def test_cross_bank_signal():
    d = make_fraud(20000, seed=0)
    assert _auc(d.X, d.y) > _auc(d.vertical()[0][0], d.y) + 0.005
