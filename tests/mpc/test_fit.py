"""mpc.fit_local: the analyst entry point (public contract)."""

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, make_classification

import mpc

pytestmark = pytest.mark.timeout(120)


def test_ridge_horizontal_contract():
    X, y = load_diabetes(return_X_y=True, scaled=False)
    parts = [(X[i::3], y[i::3]) for i in range(3)]
    m = mpc.fit_local("ridge", parts, alpha=1.0, seed=1)
    assert m.coef_.shape == (10,) and isinstance(m.intercept_, float)
    assert m.predict(X).shape == (442,)
    assert len(m.stats["rounds"]) == 3 and all(r > 0 for r in m.stats["rounds"])
    assert all(b > 0 for b in m.stats["bytes_sent"]) and m.stats["seconds"] > 0
    assert m.score(X, y) > 0.5
    with pytest.raises(AttributeError):
        m.predict_proba(X)


@pytest.mark.parametrize("scheme", ["additive", "shamir"])
def test_logistic_vertical_contract(scheme):
    X, y = make_classification(n_samples=300, n_features=6, random_state=0)
    parts = [(X[:, :2], None), (X[:, 2:4], y), (X[:, 4:], None)]
    m = mpc.fit_local("logistic", parts, partition="vertical", scheme=scheme, epochs=2,
                      batch_size=50, seed=2)
    p = m.predict_proba(X)
    assert p.shape == (300, 2) and np.allclose(p.sum(1), 1)
    assert set(np.unique(m.predict(X))) <= {0, 1}
    assert m.score(X, y) > 0.8


def test_tcp_transport():
    X, y = load_diabetes(return_X_y=True, scaled=False)
    m = mpc.fit_local("linear", [(X[:200], y[:200]), (X[200:], y[200:])], transport="tcp", seed=3)
    assert m.score(X, y) > 0.5
