"""fit_local: train a linear model securely with all parties in this process (analysts,
notebooks, tests). The result is the *released* model, with scikit-learn's conventions.

    >>> import mpc
    >>> m = mpc.fit_local("logistic", [(X0, y0), (X1, y1), (X2, y2)], epochs=10)
    >>> m.predict(X_new), m.predict_proba(X_new), m.coef_, m.classes_, m.score(X, y), m.stats

Each party's data only enters its own party's job; the parties compute over shares
(protocols.apps.ml) and the model is opened at the end (to every party: each party of a local
run is this process anyway).

scikit-learn conventions (no scikit-learn import: it is a [dev] extra): `get_params` /
`set_params` (the model name, the run's options and the hyperparameters, so that
`sklearn.base.clone` works), `fit(parts)` (parts instead of (X, y): the data is split by
party), `coef_` (d,), `intercept_` (float), `n_features_in_`, `feature_names_in_` (when every
X is a pandas DataFrame), `classes_` and `predict_proba` (n, 2) for logistic models only (a
regression model has neither attribute, as in scikit-learn), `decision_function`, `predict`,
`score(X, y, sample_weight=None)` (accuracy for logistic, R^2 otherwise). X may be a numpy
array or a pandas DataFrame, y an array or a Series (pandas is never imported: anything with
`to_numpy` is accepted). Logistic labels may be any two values (classes_ sorted, the second
is the positive class, as scikit-learn's); they are mapped to 0/1 before training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mpc.local import run_local
from protocols.errors import ParameterError

#: the options of the run itself (everything else is a hyperparameter of the model)
RUN_PARAMS = ("partition", "scheme", "transport", "seed", "preprocessing", "security")


def _array(v: Any) -> np.ndarray:
    return np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v)


def _columns(X: Any) -> list[str] | None:
    cols = getattr(X, "columns", None)
    if cols is None or not all(isinstance(c, str) for c in cols):
        return None
    return [str(c) for c in cols]


class FittedModel:
    """A linear model ("linear", "ridge" or "logistic") trained securely by `fit_local`.

    Constructed with the arguments of fit_local (minus the data) and fitted with `fit(parts)`;
    `fit_local(model, parts, **kw)` is `FittedModel(model, **kw).fit(parts)`. After fit:
    coef_ (d,), intercept_ (float), n_features_in_, feature_names_in_ (DataFrames), classes_
    (logistic), stats {"rounds": [...], "bytes_sent": [...], "messages_sent": [...],
    "seconds": s, "per_party": [Stats.as_dict(), ...]} (one entry per party) and info.
    """

    # set by fit (absent before, as scikit-learn's fitted attributes)
    coef_: np.ndarray
    intercept_: float
    n_features_in_: int
    feature_names_in_: np.ndarray
    classes_: np.ndarray

    def __init__(
        self,
        model: str = "logistic",
        *,
        partition: str = "horizontal",
        scheme: str = "additive",
        transport: str = "memory",
        seed: int | None = None,
        preprocessing: str = "trusted_dealer",
        security: str = "semi-honest",
        **hyperparameters: Any,
    ):
        self.model = model
        self.partition = partition
        self.scheme = scheme
        self.transport = transport
        self.seed = seed
        self.preprocessing = preprocessing
        self.security = security
        self.hyperparameters = dict(hyperparameters)
        self.stats: dict[str, Any] = {}
        self.info: dict[str, Any] = {}

    # -- scikit-learn's parameter protocol ------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments: model, the run options and the hyperparameters."""
        params = {"model": self.model, **{k: getattr(self, k) for k in RUN_PARAMS}}
        params.update(self.hyperparameters)
        return params

    def set_params(self, **params: Any) -> FittedModel:
        """Change constructor arguments (for the next `fit`); returns self. Unknown
        hyperparameters are refused by `fit` (ParameterError naming them)."""
        for k, v in params.items():
            if k == "model" or k in RUN_PARAMS:
                setattr(self, k, v)
            else:
                self.hyperparameters[k] = v
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if k != "model")
        return f"FittedModel({self.model!r}{', ' if args else ''}{args})"

    # -- training --------------------------------------------------------------------------
    def fit(self, parts: list[tuple[Any, Any]]) -> FittedModel:
        """Train on `parts`, one (X_i, y_i) per party (see fit_local); returns self."""
        n = len(parts)
        if n < 2:
            raise ParameterError("fit_local needs at least two parties' parts")
        for attr in ("classes_", "feature_names_in_"):  # from an earlier fit
            self.__dict__.pop(attr, None)
        names = [None if X is None else _columns(X) for X, _ in parts]
        arrays = [
            (None if X is None else _array(X).astype(np.float64),
             None if y is None else _array(y).reshape(-1))
            for X, y in parts
        ]
        if self.model == "logistic":
            arrays = self._binary_labels(arrays)
        domain = None
        if self.scheme == "shamir":  # the default already, stated for readers
            from protocols.arith.field import Mersenne127

            domain = Mersenne127()
        model, partition, hp = self.model, self.partition, self.hyperparameters

        async def job(s: Any) -> tuple[Any, Any, dict[str, Any]]:
            from protocols.apps.ml import train

            X, y = arrays[s.pid]
            m = await train(s, model, X, y, partition=partition, **hp)
            coef, intercept = await m.reveal(s)
            return coef, intercept, m.info

        run = run_local(n, job, scheme=self.scheme, transport=self.transport, seed=self.seed,
                        domain=domain, preprocessing=self.preprocessing, security=self.security)
        coef, intercept, info = run.results[0]
        per = [st.as_dict() for st in run.stats]
        self.stats = {
            "rounds": [p["rounds"] for p in per],
            "bytes_sent": [p["bytes_sent"] for p in per],
            "messages_sent": [p["messages_sent"] for p in per],
            "seconds": run.seconds,
            "per_party": per,
        }
        self.info = dict(info)
        self.coef_ = np.asarray(coef, dtype=np.float64)
        self.intercept_ = float(intercept)
        self.n_features_in_ = int(self.coef_.shape[0])
        self._set_feature_names(names)
        return self

    def _binary_labels(self, arrays: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
        ys = [y for _, y in arrays if y is not None]
        seen = np.unique(np.concatenate(ys)) if ys else np.array([])
        if len(seen) > 2:
            raise ParameterError(f"logistic regression is binary: got {len(seen)} classes")
        if set(seen.tolist()) <= {0, 1}:
            self.classes_ = np.array([0, 1])
            return arrays
        if len(seen) < 2:
            raise ParameterError(f"logistic regression needs two classes, got {seen.tolist()}")
        self.classes_ = seen
        return [(X, None if y is None else (y == seen[1]).astype(np.int64)) for X, y in arrays]

    def _set_feature_names(self, names: list[list[str] | None]) -> None:
        present = [nm for nm in names if nm is not None]
        if not present or len(present) != len(names):
            return
        if self.partition == "vertical":
            cols = [c for nm in names for c in nm]  # type: ignore[union-attr]
        elif all(nm == present[0] for nm in present):
            cols = present[0]
        else:
            raise ParameterError("horizontal partition: the parties' DataFrames have different columns")
        if len(cols) == self.n_features_in_:
            self.feature_names_in_ = np.array(cols, dtype=object)

    # -- prediction ------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise AttributeError("this model is not fitted yet: call fit(parts) or mpc.fit_local")

    def _X(self, X: Any) -> np.ndarray:
        self._check_fitted()
        names = getattr(self, "feature_names_in_", None)
        cols = _columns(X)
        if names is not None and cols is not None and cols != list(names):
            raise ValueError(f"X has columns {cols}, the model was fitted on {list(names)}")
        A = _array(X).astype(np.float64)
        if A.ndim != 2 or A.shape[1] != self.n_features_in_:
            raise ValueError(f"X has shape {A.shape}; the model has {self.n_features_in_} features")
        return A

    def decision_function(self, X: Any) -> np.ndarray:
        z: np.ndarray = self._X(X) @ self.coef_ + self.intercept_
        return z

    def predict(self, X: Any) -> np.ndarray:
        z = self.decision_function(X)
        if self.model == "logistic":
            return self.classes_[(z > 0).astype(np.int64)]
        return z

    @property
    def predict_proba(self) -> Callable[[Any], np.ndarray]:
        """(n, 2) probabilities of classes_[0] and classes_[1] (logistic models only: other
        models have no predict_proba attribute, as scikit-learn's regressors)."""
        if self.model != "logistic":
            raise AttributeError("predict_proba is defined for model='logistic' only")
        return self._predict_proba

    def _predict_proba(self, X: Any) -> np.ndarray:
        p1 = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1.0 - p1, p1])

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy (logistic) or R^2 (regression), as scikit-learn's `score`."""
        yy = _array(y).reshape(-1)
        w = np.ones(len(yy)) if sample_weight is None else _array(sample_weight).astype(np.float64)
        if self.model == "logistic":
            return float(np.average(self.predict(X) == yy, weights=w))
        yy = yy.astype(np.float64)
        r = yy - self.predict(X)
        mean = np.average(yy, weights=w)
        return float(1.0 - (w @ (r * r)) / (w @ ((yy - mean) ** 2)))


def fit_local(
    model: str,
    parts: list[tuple[Any, Any]],
    *,
    partition: str = "horizontal",
    scheme: str = "additive",
    transport: str = "memory",
    seed: int | None = None,
    preprocessing: str = "trusted_dealer",
    security: str = "semi-honest",
    **hyperparameters: Any,
) -> FittedModel:
    """Train `model` ("linear", "ridge", "logistic") on `parts`, one (X_i, y_i) per party,
    securely with len(parts) parties in this process, and return the released model.

    X_i: arrays or pandas DataFrames; y_i: arrays or Series (logistic: any two labels).
    partition "horizontal": each X_i holds rows (same features); "vertical": each X_i holds
    columns of the same aligned rows and exactly one party passes y (None elsewhere).
    scheme "additive" (Z_2^64) or "shamir" (GF(2^127 - 1), threshold (n-1)//2). transport
    "memory" | "tcp" | "mqtt" (see run_local). hyperparameters: see protocols.apps.ml.train,
    including dp={"epsilon", "delta", "mechanism", "bounds", "residual_bound"}: DP noise on the
    coefficients, generated under MPC (protocols.apps.ml.private; the stated noise and
    sensitivity are in the fitted model's info["dp"]; semi-honest only).
    `security="malicious"` trains with malicious security with abort (protocols.apps.ml.
    malicious): scheme="shamir" (n = 2t + 1, Chida et al.) or scheme="additive" (SPDZ2k, any
    n >= 2, preprocessing "trusted_dealer" or "ot"): the same fixed-point algorithm, a
    cheater caught with security.cheating_detected on every honest party and no model
    released; the smooth sigmoid raises MaliciousUnsupportedError.
    """
    est = FittedModel(model, partition=partition, scheme=scheme, transport=transport,
                      seed=seed, preprocessing=preprocessing, security=security, **hyperparameters)
    return est.fit(parts)


__all__ = ["FittedModel", "fit_local"]
