"""The same training algorithms in float64 numpy (pure functions, no session): the yardstick
for the secure versions' accuracy. Same standardisation (global population mean / sd), same
public batch order, learning-rate schedule, class weights, L2 and sigmoid."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from protocols.apps.ml.sgd import ClassWeight, batches, class_weights, learning_rates


def sigmoid_piecewise(z: np.ndarray) -> np.ndarray:
    return np.clip(z + 0.5, 0.0, 1.0)


def sigmoid_smooth(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def fit_sgd_plain(
    X: np.ndarray, y: np.ndarray, *, loss: str, batch_size: int = 64, epochs: int = 10,
    lr: float = 0.5, schedule: str = "constant", lr_decay: float = 0.0, l2: float = 0.0,
    class_weight: ClassWeight = None, sigmoid: str = "piecewise", shuffle_seed: int | None = 0,
    feature_scale: npt.ArrayLike | None = None, standardize: bool = True,
) -> tuple[np.ndarray, float]:
    """(coef, intercept) in original units; X are all rows in the secure run's order."""
    X = np.asarray(X, dtype=np.float64)
    if feature_scale is not None:
        X = X / np.asarray(feature_scale, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    N, d = X.shape
    mu, sd = (X.mean(0), X.std(0)) if standardize else (np.zeros(d), np.ones(d))
    sd = np.where(sd > 0, sd, 1.0)
    Xa = np.hstack([(X - mu) / sd, np.ones((N, 1))])
    c0, c1 = class_weights(class_weight, int(y.sum()) if class_weight == "balanced" else None, N)
    Xg = Xa * (c0 + (c1 - c0) * y)[:, None]
    sched = batches(N, batch_size, epochs, shuffle_seed)
    rates = learning_rates(lr, schedule, len(sched), epochs, lr_decay)
    sig = sigmoid_piecewise if sigmoid == "piecewise" else sigmoid_smooth
    mask = np.ones(d + 1)
    mask[d] = 0
    w = np.zeros(d + 1)
    for idx, rate in zip(sched, rates, strict=True):
        z = Xa[idx] @ w
        p = sig(z) if loss == "logistic" else z
        g = Xg[idx].T @ (p - y[idx])
        w = w - rate * (g / len(idx) + l2 * mask * w)
    coef = w[:d] / sd
    intercept = w[d] - coef @ mu
    if feature_scale is not None:
        coef = coef / np.asarray(feature_scale, dtype=np.float64)
    return coef, float(intercept)


def fit_dp_plain(
    X: np.ndarray, y: np.ndarray, *, loss: str, bounds: npt.ArrayLike, batch_size: int = 64,
    epochs: int = 10, lr: float = 0.5, l2: float = 0.0, residual_bound: float | None = None,
    shuffle_seed: int | None = 0,
) -> np.ndarray:
    """The DP trainer of protocols.apps.ml.private before its noise, in float64: features
    mapped by the bounds to [-1, 1] and clipped, piecewise sigmoid (logistic) or Huber
    residual (squared, residual_bound), constant step. Returns the mapped-space weights
    (d + 1, intercept last): the quantity whose sensitivity private.sensitivity bounds."""
    b = np.asarray(bounds, dtype=np.float64)
    c, r = (b[:, 0] + b[:, 1]) / 2, (b[:, 1] - b[:, 0]) / 2
    inv_r = np.where(r > 0, 1.0 / np.where(r > 0, r, 1.0), 0.0)
    Xm = np.clip((np.asarray(X, dtype=np.float64) - c) * inv_r, -1.0, 1.0)
    N, d = Xm.shape
    Xa = np.hstack([Xm, np.ones((N, 1))])
    y = np.asarray(y, dtype=np.float64)
    mask = np.ones(d + 1)
    mask[d] = 0
    w = np.zeros(d + 1)
    for idx in batches(N, batch_size, epochs, shuffle_seed):
        z = Xa[idx] @ w
        e = (sigmoid_piecewise(z) if loss == "logistic" else z) - y[idx]
        if residual_bound is not None:
            e = np.clip(e, -residual_bound, residual_bound)
        w = w - lr * (Xa[idx].T @ e / len(idx) + l2 * mask * w)
    return w
