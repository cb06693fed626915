"""mpc.fit_local: the analyst entry point (public contract)."""

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, make_classification

import mpc
from protocols.errors import ParameterError

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


# -- scikit-learn conventions ----------------------------------------------------------
def _small_logistic(labels=(0, 1), n=120, **kw):
    X, y = make_classification(n_samples=n, n_features=4, n_informative=3, n_redundant=0,
                               random_state=1)
    y = np.asarray(labels)[y]
    parts = [(X[i::3], y[i::3]) for i in range(3)]
    return X, y, mpc.fit_local("logistic", parts, epochs=2, batch_size=40, seed=4, **kw)


def test_params_protocol_and_clone():
    from sklearn.base import clone

    X, y, m = _small_logistic()
    p = m.get_params()
    assert p == {"model": "logistic", "partition": "horizontal", "scheme": "additive",
                 "transport": "memory", "seed": 4, "preprocessing": "trusted_dealer",
                 "security": "semi-honest",
                 "epochs": 2, "batch_size": 40}
    c = clone(m)
    assert c.get_params() == p and not hasattr(c, "coef_")
    with pytest.raises(AttributeError, match="not fitted"):
        c.predict(X)
    assert c.set_params(epochs=1, transport="tcp") is c
    assert c.get_params()["epochs"] == 1 and c.transport == "tcp"
    parts = [(X[i::3], y[i::3]) for i in range(3)]
    c.fit(parts)
    assert c.coef_.shape == (4,) and c.stats["rounds"][0] < m.stats["rounds"][0]
    with pytest.raises(ParameterError, match="unknown hyperparameters"):
        clone(m).set_params(n_estimators=3).fit(parts)
    assert "epochs=2" in repr(m)


def test_classes_and_predict_proba_follow_sklearn():
    X, y, m = _small_logistic(labels=("ok", "fraud"))
    assert list(m.classes_) == ["fraud", "ok"]  # sorted; the second is the positive class
    assert set(m.predict(X)) <= {"ok", "fraud"}
    p = m.predict_proba(X)
    assert p.shape == (len(X), 2) and np.allclose(p.sum(1), 1)
    # column 1 is P(classes_[1]), and predict picks the larger column
    assert (m.classes_[p.argmax(1)] == m.predict(X)).all()
    assert m.score(X, y) > 0.7 and m.score(X, y) == np.mean(m.predict(X) == y)
    with pytest.raises(ParameterError, match="binary"):
        _small_logistic(labels=(0, 1))[2].set_params().fit(
            [(X[:40], np.arange(40) % 3), (X[40:], np.zeros(80))])


def test_regression_has_no_classifier_attributes_and_weighted_score():
    from sklearn.metrics import r2_score

    X, y = load_diabetes(return_X_y=True, scaled=False)
    m = mpc.fit_local("ridge", [(X[:150], y[:150]), (X[150:], y[150:])], alpha=1.0, seed=2)
    assert not hasattr(m, "classes_") and not hasattr(m, "predict_proba")
    w = np.linspace(0.5, 2.0, len(y))
    assert m.score(X, y, sample_weight=w) == pytest.approx(r2_score(y, m.predict(X), sample_weight=w))
    assert m.n_features_in_ == 10


def test_pandas_dataframes_and_series():
    pd = pytest.importorskip("pandas")
    X, y = load_diabetes(return_X_y=True, as_frame=True, scaled=False)
    assert isinstance(X, pd.DataFrame) and isinstance(y, pd.Series)
    parts = [(X.iloc[i::2], y.iloc[i::2]) for i in range(2)]
    m = mpc.fit_local("linear", parts, seed=5)
    assert list(m.feature_names_in_) == list(X.columns)
    ref = mpc.fit_local("linear", [(a.to_numpy(), b.to_numpy()) for a, b in parts], seed=5)
    assert np.array_equal(m.coef_, ref.coef_) and not hasattr(ref, "feature_names_in_")
    assert np.allclose(m.predict(X), m.predict(X.to_numpy())) and m.score(X, y) > 0.5
    with pytest.raises(ValueError, match="columns"):
        m.predict(X[list(reversed(X.columns))])
    # vertical: each bank's columns, in party order
    cols = [list(X.columns[:4]), list(X.columns[4:7]), list(X.columns[7:])]
    mv = mpc.fit_local("linear", [(X[cols[0]], None), (X[cols[1]], y), (X[cols[2]], None)],
                       partition="vertical", seed=6)
    assert list(mv.feature_names_in_) == list(X.columns) and mv.score(X, y) > 0.5
