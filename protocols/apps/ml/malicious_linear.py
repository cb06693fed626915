"""Linear and ridge regression in closed form with malicious security (Shamir, t < n/2):
protocols.apps.ml.linear's algorithm (the normal equations from summed local moments or one
cross-party matrix product, Newton-Schulz solve [Schulz 1933; Pan and Schreiber 1991], as in
Nikolaenko et al., IEEE S&P 2013) with every product, truncation and comparison the checked
one of protocols.malicious [CGHIKLN18: Chida, Genkin, Hamada, Ikarashi, Kikuchi, Lindell,
Nof, CRYPTO 2018]; the model leaves only through the verified openings.

Rounds: horizontal: 2 (N) + 2 + 4 (moments) + 10 (masks) + 3 + ~49 (inv_sqrt) + 18 + 6 +
10 (masks) + 6 * solver_iters + 3 + finish ~10; independent of N. Vertical: ~16 + 6 *
solver_iters + finish. Bytes: horizontal O(n d^2) per party; vertical O(n N d).
Security: malicious with abort; reveals N (horizontal), the shapes and the label owner.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocols import malicious as mal
from protocols.apps.ml._base import encode, pub
from protocols.apps.ml.data import REFINE_EXTRA, _as2d, _scaled
from protocols.apps.ml.malicious import (
    MSharedModel,
    finish,
    moment_bits,
    prepare_vertical,
    public_total,
    sum_inputs,
)
from protocols.arith.fixedpoint import DEFAULT_F
from protocols.errors import ConfigError, ShapeMismatch
from protocols.malicious.batch import bcast, concat, const, prepare_batch, refresh_many
from protocols.malicious.chida18 import MShare
from protocols.malicious.nonlinear import fixed_mul, inv_sqrt, refine_inv_sqrt
from protocols.session import Session


async def newton_schulz_solve(s: Session, A: MShare, b: MShare, trace_bound: float, *, iters: int,
                              f: int = DEFAULT_F, f_solve: int = 20) -> MShare:
    """_base.newton_schulz_solve on MShares: X_{k+1} = X_k (2I - A X_k) from I / c, w = X_K b.
    Rounds: 10 (masks) + 6 per iteration + 3."""
    d = A.shape[0]
    if A.shape != (d, d) or b.shape != (d,):
        raise ShapeMismatch(f"solve: A {A.shape}, b {b.shape}")
    if f_solve < f:
        raise ConfigError("f_solve must be >= f")
    await prepare_batch(s, {f_solve: 2 * iters * d * d + d})
    A, b = await refresh_many(s, A, b)
    As = A * (1 << (f_solve - f))
    eye2 = np.eye(d, dtype=np.int64) * (2 << f_solve)
    X = await const(s, np.eye(d, dtype=np.int64) * int(round((1 << f_solve) / trace_bound)), (d, d))
    for _ in range(iters):
        T = await mal.trunc(s, await mal.matmul(s, As, X), f_solve)
        X = await mal.trunc(s, await mal.matmul(s, X, (-T) + eye2), f_solve)
    return await mal.trunc(s, await mal.matmul(s, X, b), f_solve)


async def _moments_horizontal(s: Session, X_local: np.ndarray | None, y_local: np.ndarray | None,
                              alpha: float, f: int, feature_scale: Any) -> tuple[Any, ...]:
    X = _as2d(X_local)
    if X is None or y_local is None:
        raise ConfigError("horizontal partition: every party passes X and y")
    Xs = _scaled(X, feature_scale)
    y = np.asarray(y_local, dtype=np.float64).reshape(-1, 1)
    if len(y) != len(Xs):
        raise ShapeMismatch(f"X has {len(Xs)} rows, y has {len(y)}")
    N = await public_total(s, len(X))
    Z = np.hstack([Xs, y])
    d1 = Z.shape[1]
    d = d1 - 1
    g = f + REFINE_EXTRA
    local = np.concatenate([Z.sum(0) / N, (Z.T @ Z).ravel() / N])
    P = await sum_inputs(s, encode(s, local, f), bits=moment_bits(s.domain, f))
    # the masks' verification also settles the moments' range checks
    await prepare_batch(s, {f: d1 * d1 + 2 * d, 20: d, 24: 13 * d + 2 * d * d, 25: 2 * d, 36: d}, 25 * d)
    (P,) = await refresh_many(s, P)
    m, M = P[:d1], P[d1:].reshape(d1, d1)
    outer = await mal.trunc(s, await mal.matmul(s, m.reshape(d1, 1), m.reshape(1, d1)), f)
    M, outer, m = await refresh_many(s, M, outer, m)
    cov = M - outer
    idx = np.arange(d)
    var = cov[idx, idx]
    y0 = await inv_sqrt(s, var, f)
    var, y0 = await refresh_many(s, var, y0)
    istd = await refine_inv_sqrt(s, var, y0, f, REFINE_EXTRA)
    cov, istd, m = await refresh_many(s, cov, istd, m)
    lhs = concat([cov[:d, :d].reshape(-1), cov[:d, d]])
    rhs = concat([bcast(istd, (d, d)).reshape(-1), istd])
    prod = await fixed_mul(s, lhs, rhs, g)  # Cov_ij / sd_j and cov(x_i, y) / sd_i
    prod, istd = await refresh_many(s, prod, istd)
    corr = await fixed_mul(s, prod[: d * d], bcast(istd.reshape(d, 1), (d, d)).reshape(-1), g)
    corr, prod, istd, m = await refresh_many(s, corr, prod, istd, m)
    A = corr.reshape(d, d) + pub(np.eye(d) * alpha / N, f)
    return A, prod[d * d :], m[:d], istd, g, m[d], d * (1 + alpha / N), N, d


async def _moments_vertical(s: Session, X_local: np.ndarray | None, y_local: np.ndarray | None,
                            alpha: float, f: int) -> tuple[Any, ...]:
    P = await prepare_vertical(s, X_local, y_local, binary=False, f=f, center_y=True)
    N, d = P.N, P.d
    k = max(0, int(round(np.log2(N))))
    assert P.ybar is not None
    Xs, ys = await refresh_many(s, P.X, P.y)
    rhs = concat([Xs, ys.reshape(N, 1)], 1)
    G = await mal.trunc(s, await mal.matmul(s, Xs.T, rhs), f + k)
    A = G[:, :d] + pub(np.eye(d) * alpha / 2.0**k, f)
    return A, G[:, d], P.mu, P.istd, P.istd_f, P.ybar, d * (N / 2.0**k) + alpha / 2.0**k, N, d


async def fit_closed_form(
    s: Session, X_local: np.ndarray | None, y_local: np.ndarray | None, *,
    partition: str = "horizontal", alpha: float = 0.0, f: int = DEFAULT_F,
    solver_iters: int = 24, f_solve: int = 20, feature_scale: Any = None, model: str = "ridge",
) -> MSharedModel:
    """linear.fit_closed_form with malicious security (module docstring)."""
    if alpha < 0:
        raise ConfigError("alpha must be >= 0")
    if partition == "horizontal":
        A, b, mu, istd, istd_f, ybar, trace, N, d = await _moments_horizontal(
            s, X_local, y_local, alpha, f, feature_scale)
    elif partition == "vertical":
        A, b, mu, istd, istd_f, ybar, trace, N, d = await _moments_vertical(s, X_local, y_local, alpha, f)
        feature_scale = None
    else:
        raise ConfigError(f"partition must be 'horizontal' or 'vertical', got {partition!r}")
    w = await newton_schulz_solve(s, A, b, trace * 1.05, iters=solver_iters, f=f, f_solve=f_solve)
    w, mu, istd, ybar = await refresh_many(s, w, mu, istd, ybar)
    coef, intercept = await finish(s, w, mu, istd, istd_f, ybar, f, feature_scale)
    return MSharedModel(model, coef, intercept, d, f, info={
        "n_samples": N, "partition": partition, "alpha": alpha, "solver": "closed_form",
        "solver_iters": solver_iters, "security": "malicious"})


__all__ = ["fit_closed_form", "newton_schulz_solve"]
