"""Training linear models over secret-shared data: linear and ridge regression (closed form
or mini-batch gradient descent) and logistic regression (mini-batch SGD), for horizontally
and vertically partitioned data. The fitted model stays secret-shared (SharedModel) until
released with `reveal_to` / `reveal`.

    model = await train(s, "logistic", X_mine, y_mine, partition="horizontal", epochs=10)
    coef_intercept = await model.reveal_to(s, 0)

Modules: data (inputs, secure standardisation), linear (closed form, Newton-Schulz solve),
sgd (SecureML-style mini-batch GD), reference (the same algorithms in float64).
References: Mohassel and Zhang, "SecureML", IEEE S&P 2017; Nikolaenko et al., "Privacy-
Preserving Ridge Regression on Hundreds of Millions of Records", IEEE S&P 2013.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocols.apps.ml._base import SharedModel
from protocols.apps.ml.data import prepare_horizontal, prepare_vertical
from protocols.apps.ml.linear import finish, fit_closed_form
from protocols.apps.ml.sgd import sgd, sgd_params
from protocols.arith.fixedpoint import DEFAULT_F
from protocols.core import open as open_shares
from protocols.errors import ConfigError
from protocols.session import Session

MODELS = ("linear", "ridge", "logistic")
PARTITIONS = ("horizontal", "vertical")

#: hyperparameters of each solver (anything else raises ConfigError)
_CLOSED = {"alpha", "solver", "solver_iters", "f_solve", "feature_scale"}
_SGD = {"alpha", "l2", "solver", "batch_size", "epochs", "lr", "schedule", "lr_decay",
        "class_weight", "sigmoid", "shuffle_seed", "feature_scale", "standardize"}


async def train(
    s: Session, model: str, X_local: np.ndarray | None, y_local: np.ndarray | None, *,
    partition: str = "horizontal", f: int = DEFAULT_F, dp: dict[str, Any] | None = None,
    **hp: Any,
) -> Any:
    """Train `model` ("linear", "ridge", "logistic") on every party's own float data.

    horizontal: each party passes its rows X_local (N_i, d) and labels y_local (N_i,).
    vertical: each party passes its columns (N, d_i) of the same aligned rows; exactly one
    party passes y, the others None.
    Hyperparameters:
      linear / ridge: solver="closed_form" (default) | "gd"; alpha (ridge penalty as in
        sklearn Ridge on standardised features; default 1.0 for ridge, 0 for linear);
        closed form: solver_iters=24, f_solve=20; gd: as logistic (l2 = alpha / N).
      logistic: batch_size=64, epochs=10, lr=0.5, schedule="constant" | "epoch_decay" |
        "invscaling", lr_decay=0.0, l2=0.0 (gradient + l2 * w; sklearn's C maps to
        l2 = 1 / (C N)), class_weight=None | "balanced" | {0: c0, 1: c1},
        sigmoid="piecewise" (SecureML) | "smooth", shuffle_seed=0 (public batch order).
      all: feature_scale (public per-feature divisor, horizontal; finite and non-zero, and
        each bank saturates x / scale to the fixed-point input range instead of refusing:
        data.scaled_input), standardize=True (sgd).
    dp: None, or {"epsilon", "delta", "mechanism", "bounds", "residual_bound"}: the released
      coefficients carry DP noise generated under MPC (output perturbation with the Bolt-on
      sensitivity, protocols.apps.ml.private); settings outside its analysis raise ConfigError.
    Returns a SharedModel (coef, intercept in original units, f fractional bits).
    Security: semi-honest, or malicious with abort when s.security == "malicious" (Shamir,
    t < n/2, or additive SPDZ2k over Z_2^64, any number corrupt: protocols.apps.ml.malicious
    and malicious_linear, the same algorithm on MACed shares through the backend seam
    protocols.malicious.backend; returns an MSharedModel with the same reveal / reveal_to);
    reveals the shapes, N (horizontal), the label owner (vertical),
    and for class_weight="balanced" the number of positive labels.
    """
    if model not in MODELS:
        raise ConfigError(f"model must be one of {MODELS}, got {model!r}")
    if partition not in PARTITIONS:
        raise ConfigError(f"partition must be one of {PARTITIONS}, got {partition!r}")
    if dp is not None:
        from protocols.apps.ml.private import fit_dp

        return await fit_dp(s, model, X_local, y_local, partition=partition, f=f, dp=dp, hp=hp)
    solver = hp.get("solver", "sgd" if model == "logistic" else "closed_form")
    allowed = _CLOSED if solver == "closed_form" else _SGD
    unknown = set(hp) - allowed
    if unknown:
        raise ConfigError(f"unknown hyperparameters for {model}/{solver}: {sorted(unknown)}")
    if model == "logistic" and solver not in ("sgd", "gd"):
        raise ConfigError("logistic regression trains with solver='sgd'")
    alpha = float(hp.get("alpha", 1.0 if model == "ridge" else 0.0))
    if model == "linear" and alpha:
        raise ConfigError("model='linear' has no penalty: use model='ridge'")
    if s.security == "malicious":
        return await _train_malicious(s, model, X_local, y_local, partition, f, alpha, solver, hp)
    if solver == "closed_form":
        return await fit_closed_form(
            s, X_local, y_local, partition=partition, alpha=alpha, f=f,
            solver_iters=int(hp.get("solver_iters", 24)), f_solve=int(hp.get("f_solve", 20)),
            feature_scale=hp.get("feature_scale"), model=model,
        )
    if solver not in ("gd", "sgd"):
        raise ConfigError(f"unknown solver {solver!r}")
    return await _fit_sgd(s, model, X_local, y_local, partition, f, alpha, hp)


async def _train_malicious(
    s: Session, model: str, X_local: np.ndarray | None, y_local: np.ndarray | None,
    partition: str, f: int, alpha: float, solver: str, hp: dict[str, Any],
) -> Any:
    """security="malicious": the same trainers (protocols.apps.ml.malicious, malicious_linear)
    on malicious Shamir or, for additive sessions, SPDZ2k (protocols.malicious.backend)."""
    from protocols.apps.ml import malicious as mt
    from protocols.apps.ml import malicious_linear as ml

    if solver == "closed_form":
        return await ml.fit_closed_form(
            s, X_local, y_local, partition=partition, alpha=alpha, f=f,
            solver_iters=int(hp.get("solver_iters", 24)), f_solve=int(hp.get("f_solve", 20)),
            feature_scale=hp.get("feature_scale"), model=model,
        )
    if solver not in ("gd", "sgd"):
        raise ConfigError(f"unknown solver {solver!r}")
    return await mt.fit_sgd(s, model, X_local, y_local, partition, f, alpha, hp)


async def _fit_sgd(
    s: Session, model: str, X_local: np.ndarray | None, y_local: np.ndarray | None,
    partition: str, f: int, alpha: float, hp: dict[str, Any],
) -> SharedModel:
    binary = model == "logistic"
    standardize = bool(hp.get("standardize", True))
    if partition == "horizontal":
        P = await prepare_horizontal(
            s, X_local, y_local, binary=binary, f=f, feature_scale=hp.get("feature_scale"),
            standardize=standardize,
        )
        scale = hp.get("feature_scale")
    else:
        P = await prepare_vertical(s, X_local, y_local, binary=binary, f=f, standardize=standardize)
        scale = None
    n_pos = None
    if binary and hp.get("class_weight") == "balanced":
        (tot,) = await open_shares(s, P.y.sum().reshape(1))
        n_pos = int(s.domain.to_signed(tot)[0])
    w = await sgd(s, P.X, P.y, **sgd_params(hp, binary=binary, alpha=alpha, N=P.N, n_pos=n_pos, f=f))
    d = P.d
    coef, intercept = await finish(s, w[:d], P.mu, P.istd, P.istd_f, w[d], f, scale)
    info = {"n_samples": P.N, "partition": partition, "solver": "sgd", **hp}
    return SharedModel(model, coef, intercept, d, f, info=info)


__all__ = ["MODELS", "PARTITIONS", "SharedModel", "train"]
