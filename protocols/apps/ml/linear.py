"""Linear and ridge regression in closed form over shares.

    minimise ||y - ybar - Xs w||^2 + alpha ||w||^2   (Xs: standardised features)
    =>  (C + alpha/N I) w = c_xy,   C = Xs^T Xs / N (the correlation matrix), c_xy = Xs^T (y - ybar) / N

which is exactly scikit-learn's Ridge(alpha) (LinearRegression for alpha = 0) on
StandardScaler-transformed features; the coefficients are then mapped back to original units
(coef = w / sd, intercept = ybar - coef . mu), all over shares.

Horizontal partition: X^T X = sum_i X_i^T X_i over the parties, so each party computes its
own moment matrix Z_i^T Z_i / N (Z_i = [X_i, y_i]) and column sums in plaintext and inputs
them; only the sum is formed. This is secure (the inputs are shared, and the sum is exactly
what the ideal functionality computes from) and avoids any secure product over the N rows:
cost independent of N (the approach of, e.g., Nikolaenko et al., "Privacy-Preserving Ridge
Regression on Hundreds of Millions of Records", IEEE S&P 2013, sec. 3, where the users'
contributions to A = X^T X and b = X^T y are summed). Then Cov = M - m m^T, 1/sd =
inv_sqrt(diag Cov), C = Cov * (1/sd)(1/sd)^T, c_xy = Cov[:, y] * 1/sd.

Vertical partition: cross-party products are unavoidable: every party inputs its locally
standardised columns and the label owner y - ybar; one matrix-triple product
Xs^T [Xs, y - ybar] (SecureML sec. 4.2 style matrix Beaver triple) with a single truncation
by f + k, 2^k ~ N (a common scale of both sides, which cancels in the solve).

Solve: Newton-Schulz (protocols.apps.ml._base.newton_schulz_solve). Conditioning limit: with
f_solve = 20 bits, d / lambda_min(C + alpha/N) must stay below ~2^22 and solver_iters >=
log2(trace / lambda_min * 11) (default 24: trace / lambda_min up to 10^6). scikit-learn's
diabetes data (lambda_min(C) = 0.0086, d = 10) needs 14.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from protocols import beaver, fixed
from protocols.apps.ml._base import (
    SharedModel,
    encode,
    newton_schulz_solve,
    pub,
    public_total,
    sum_inputs,
)
from protocols.apps.ml.data import (
    REFINE_EXTRA,
    _as2d,
    prepare_vertical,
    refine_inv_sqrt,
    scale_bound,
    scaled_input,
)
from protocols.arith.fixedpoint import DEFAULT_F
from protocols.errors import ConfigError
from protocols.nonlinear import inv_sqrt
from protocols.session import Session, Share, concatenate
from protocols.truncation import trunc

#: (A, b, mu, istd, istd_f, ybar, trace bound, N, d) of the normal equations
_Moments: TypeAlias = tuple[Share, Share, Share, Share, int, Share, float, int, int]


async def mul_public_precise(s: Session, x: Share, c: npt.ArrayLike, f: int = DEFAULT_F, extra: int = 20) -> Share:
    """x * c for a public real array c, with c encoded at f + extra bits (relative error
    2^-(f+extra+1) / c instead of 2^-(f+1) / c). Range |x * c| < 2^(61 - 2f - extra + f)."""
    C = np.rint(np.broadcast_to(np.asarray(c, dtype=np.float64), x.shape) * (1 << (f + extra)))
    return await trunc(s, x * C.astype(np.int64), f + extra)


async def finish(
    s: Session, w: Share, mu: Share, istd: Share, istd_f: int, w0: Share, f: int,
    feature_scale: npt.ArrayLike | None = None,
) -> tuple[Share, Share]:
    """From standardised-space weights (w, intercept w0) to original units:
    coef_scaled = w / sd, intercept = w0 - coef_scaled . mu, coef = coef_scaled / scale."""
    cs = await trunc(s, await beaver.mul(s, w, istd), istd_f)
    # (1,) not (): the dealer cannot generate 0-d truncation items
    shift = await trunc(s, (await beaver.mul(s, cs, mu)).sum().reshape(1), f)
    intercept = (w0.reshape(1) - shift).reshape(())
    coef = cs
    if feature_scale is not None:
        coef = await mul_public_precise(s, cs, 1.0 / np.asarray(feature_scale, dtype=np.float64), f)
    return coef, intercept


async def fit_closed_form(
    s: Session, X_local: np.ndarray | None, y_local: np.ndarray | None, *,
    partition: str = "horizontal", alpha: float = 0.0, f: int = DEFAULT_F,
    solver_iters: int = 24, f_solve: int = 20, feature_scale: npt.ArrayLike | None = None,
    model: str = "ridge",
) -> SharedModel:
    """Ridge (alpha > 0) or ordinary least squares (alpha = 0) in closed form; see the module
    docstring. Shapes: X_local (N_i, d) horizontal / (N, d_i) vertical.
    Rounds: horizontal ~ 2 + 1 + 2 + 32 + 2 + 2 + 4 * solver_iters + 2 + 6 (~150 with the
    default 24 iterations), independent of N; vertical ~ 4 + 2 + 4 * solver_iters + 6.
    Bytes: horizontal O(n d^2) per party, independent of N; vertical O(n N d).
    Security: semi-honest (as the building blocks); reveals N (horizontal) and the shapes.
    """
    if alpha < 0:
        raise ConfigError("alpha must be >= 0")
    if partition == "horizontal":
        A, b, mu, istd, istd_f, ybar, trace, N, d = await _moments_horizontal(
            s, X_local, y_local, alpha, f, feature_scale
        )
    elif partition == "vertical":
        A, b, mu, istd, istd_f, ybar, trace, N, d = await _moments_vertical(s, X_local, y_local, alpha, f)
        feature_scale = None
    else:
        raise ConfigError(f"partition must be 'horizontal' or 'vertical', got {partition!r}")
    w = await newton_schulz_solve(s, A, b, trace * 1.05, iters=solver_iters, f=f, f_solve=f_solve)
    coef, intercept = await finish(s, w, mu, istd, istd_f, ybar, f, feature_scale)
    return SharedModel(
        model, coef, intercept, d, f,
        info={"n_samples": N, "partition": partition, "alpha": alpha, "solver": "closed_form",
              "solver_iters": solver_iters},
    )


async def _moments_horizontal(
    s: Session, X_local: np.ndarray | None, y_local: np.ndarray | None, alpha: float, f: int,
    feature_scale: npt.ArrayLike | None,
) -> _Moments:
    X = _as2d(X_local)
    if X is None or y_local is None:
        raise ConfigError("horizontal partition: every party passes X and y")
    Xs = scaled_input(X, feature_scale, scale_bound(s, f))
    y = np.asarray(y_local, dtype=np.float64).reshape(-1, 1)
    N = await public_total(s, len(X))
    Z = np.hstack([Xs, y])
    d1 = Z.shape[1]
    d = d1 - 1
    local = np.concatenate([Z.sum(0) / N, (Z.T @ Z).ravel() / N])
    P = await sum_inputs(s, encode(s, local, f))
    m, M = P[:d1], P[d1:].reshape(d1, d1)
    outer = await fixed.matmul(s, m.reshape(d1, 1), m.reshape(1, d1), f)
    cov = M - outer
    idx = np.arange(d)
    var = cov[idx, idx]
    istd = await refine_inv_sqrt(s, var, await inv_sqrt(s, var, f), f)  # f + 8 bits
    g = f + REFINE_EXTRA
    # Corr = istd_i Cov_ij istd_j in two products, each result in f bits: Cov * istd_j is
    # of the size of sd_i (precise), then * istd_i (an outer product of istd would be tiny)
    ist_row = Share(np.ascontiguousarray(np.broadcast_to(istd.data, (d, d))), s)
    lhs = concatenate([cov[:d, :d].reshape(-1), cov[:d, d]])
    rhs = concatenate([ist_row.reshape(-1), istd])
    prod = await fixed.mul(s, lhs, rhs, g)  # Cov_ij / sd_j and cov(x_i, y) / sd_i
    ist_col = Share(np.ascontiguousarray(np.broadcast_to(istd.data[:, None], (d, d))), s)
    corr = await fixed.mul(s, prod[: d * d], ist_col.reshape(-1), g)
    A = corr.reshape(d, d) + pub(np.eye(d) * alpha / N, f)
    b = prod[d * d:]
    return A, b, m[:d], istd, g, m[d], d * (1 + alpha / N), N, d


async def _moments_vertical(
    s: Session, X_local: np.ndarray | None, y_local: np.ndarray | None, alpha: float, f: int
) -> _Moments:
    P = await prepare_vertical(s, X_local, y_local, binary=False, f=f, center_y=True)
    N, d = P.N, P.d
    k = max(0, int(round(np.log2(N))))
    rhs = concatenate([P.X, P.y.reshape(N, 1)], 1)
    G = await trunc(s, await beaver.matmul(s, P.X.T, rhs), f + k)
    r = N / 2.0**k
    A = G[:, :d] + pub(np.eye(d) * alpha / 2.0**k, f)
    b = G[:, d]
    assert P.ybar is not None  # center_y
    return A, b, P.mu, P.istd, P.istd_f, P.ybar, d * r + alpha / 2.0**k, N, d


__all__ = ["fit_closed_form", "finish", "mul_public_precise"]
