"""Linear and ridge regression in closed form with malicious security (Shamir, t < n/2):
protocols.apps.ml.linear's algorithm (the normal equations from summed local moments or one
cross-party matrix product, Newton-Schulz solve [Schulz 1933; Pan and Schreiber 1991], as in
Nikolaenko et al., IEEE S&P 2013) with every product, truncation and comparison the checked
one of protocols.malicious [CGHIKLN18: Chida, Genkin, Hamada, Ikarashi, Kikuchi, Lindell,
Nof, CRYPTO 2018]; the model leaves only through the verified openings.

Bounded intermediates (issue 16; protocols.apps.ml.malicious, "bounded intermediates"): the
moment inputs are range-checked sums, but a cheater's in-range moments (or columns) drove the
outer product m m^T, the standardised covariances and the Newton-Schulz iterates to 2^126.
Horizontal: m is clipped to X's range before m m^T, the features' covariances to
[-2^NORM_HI, 2^NORM_HI] (the variances to [0, 2^NORM_HI)), cov(x_i, y) to sd_i sd_y's bound
(`horizontal_bounds`) and split at f bits for the product with 1/sd, Cov_ij / sd_j to its
honest bound before the second product. Both partitions: A and b are clipped to the honest
bounds of correlations and of b, and from the second Newton-Schulz iteration on the iterates
X_k and A X_k are clipped in one comparison batch per iteration (`solve_plan`: an indefinite A
diverges doubly exponentially, so no public analysis bounds fewer clips); w = X_K b is formed
with b split at f bits, and `finish` gets the bound of w. Every clip is exact: honest data
inside the stated bounds (var < 2^NORM_HI, 1 / lambda_min(A) <= solve_plan's xm) gives the
unclipped algorithm (bits differ from the unbounded version only by the truncations' random
rounding and the two split products' extra rounding: a few 2^-16).

Rounds: horizontal: 2 (N) + 2 + 4 (moments) + 10 (masks) + 13 (clip m) + 3 + 13 (clip cov) + ~49
(inv_sqrt) + 18 + 13 (clip) + 6 + 10 (masks) + 13 (clip A, b) + 6 * solver_iters + 13 *
(solver_iters - first_clip) + 5 + finish ~25; independent of N. Vertical: ~16 + the solve's + finish.
Bytes: horizontal O(n d^2 solver_iters) per party; vertical O(n N d + n d^2 solver_iters).
Security: malicious with abort; reveals N (horizontal), the shapes and the label owner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from protocols.apps.ml._base import encode, pub
from protocols.apps.ml.data import REFINE_EXTRA, _as2d, scaled_input
from protocols.apps.ml.malicious import (
    ISTD_MAX,
    MSharedModel,
    finish,
    lim,
    moment_bits,
    prepare_vertical,
    public_total,
    sum_inputs,
)
from protocols.arith.domain import Domain
from protocols.arith.fixedpoint import DEFAULT_F
from protocols.errors import ConfigError, ShapeMismatch
from protocols.malicious import backend as mal
from protocols.malicious.backend import (
    bcast,
    clip_many,
    concat,
    const,
    prepare_batch,
    refresh_many,
    stack,
)
from protocols.malicious.chida18 import MShare
from protocols.malicious.nonlinear import fixed_mul, inv_sqrt, refine_inv_sqrt
from protocols.nonlinear import NORM_HI
from protocols.session import Session


@dataclass(frozen=True)
class SolvePlan:
    """The public bound analysis of `newton_schulz_solve` (`solve_plan`): bounds (real) of
    the clipped A (entries), b, the Newton-Schulz iterates X (xm) and T = A X (tau), whether
    the last iterate is clipped too, and the resulting bound on |w|."""

    a: float
    b: float
    xm: float
    tau: float
    clip_last: bool
    w_bound: float
    #: the first iteration whose iterates are clipped (the ones before are proved in range)
    first_clip: int = 1


def solve_plan(D: Domain, d: int, *, a: float, b: float, trace_bound: float, f: int, f_solve: int,
               iters: int = 24) -> SolvePlan:
    """Which clips keep every truncation of the Newton-Schulz solve below LIM = 2^(l-2) for
    ANY A with |A_ij| <= a and |b_i| <= b (real, public). Pure.

    Honest iterates: for A symmetric positive definite with lambda_max <= c (the trace
    bound), T_k = A X_k has its spectrum in [0, 1] (so |T_ij| <= 1) and |X_k|_ij <=
    1 / lambda_min(A) (module docstring of protocols.apps.ml._base.newton_schulz_solve). A
    cheater's A (in range, but indefinite or beyond c) makes them diverge doubly
    exponentially, so X_k and T_k are clipped (in one `clip_many` per iteration) to xm and
    tau = 5/4 (never binding for honest data) from `first_clip` on: the iterations before
    it are proved in range for any such A by a row-sum-norm recursion (4 for d = 3: the
    first iterates grow at most as x (2 + d a x) from 1/c). With s = 2^f_solve:
      T = A X:        d a XT s^2 < LIM   for the unclipped new iterate |X| <= XT = d xm (2 + tau)
      X (2I - T):     d xm (2 + tau) s^2 < LIM                                     (weaker)
      w = X_K b, with b = bh 2^f + bl split (|bh| <= b + 1 an integer, |bl| < 2^(f+1)):
                      d XT s (b + 1) < LIM and d XT s 2^(f+1) < LIM,
                      else X_K is clipped to xm first (then XT -> xm above).
    xm is the largest value the first condition allows: honest data needs 1 / lambda_min(A)
    <= xm (about 2^22 / (3.6 d^2) with f_solve = 20; the semi-honest limit is ~2^22 / (3 d)).
    Raises ConfigError if X_0 = I / c does not fit (a public setting: f_solve too large)."""
    L = lim(D)
    sc = 2.0 ** f_solve
    tau = 1.25
    XT = L / (d * a * sc * sc) * 0.99
    xm = XT / (d * (2 + tau))
    if 1.0 / trace_bound > xm:
        raise ConfigError(f"closed form: f_solve={f_solve} leaves no room for the Newton-Schulz iterates "
                          "in the fixed-point range")
    # the leading iterations need no clip: with the row-sum norm, ||A|| <= al = d a, each
    # truncation off by < 1 ulp e per entry, x_k >= ||X_k||, t_k >= ||T_k||:
    #   x_0 = 1/c + e,  t_k = al x_k + d e,  x_{k+1} = x_k (2 + t_k) + d e,
    # every entry of A X_k below al x_k and of X_k (2I - T_k) below x_k (2 + t_k)
    al, e = d * a, 1.0 / sc
    x = 1.0 / trace_bound + e
    first = iters
    for k in range(iters):
        t = al * x + d * e
        xn = x * (2 + t) + d * e
        if not (al * x * sc * sc < L and x * (2 + t) * sc * sc < L and al * xn * sc * sc < L):
            first = k
            break
        x = xn
    if first == 0:
        raise ConfigError(f"closed form: f_solve={f_solve} leaves no room for the Newton-Schulz iterates "
                          "in the fixed-point range")

    def fits(x: float) -> bool:
        return d * x * sc * (b + 1) < L and d * x * sc * 2.0 ** (f + 1) < L

    xk = x if first == iters else XT  # the last iterate's bound
    clip_last = not fits(xk)
    if clip_last and not fits(xm):
        raise ConfigError("closed form: the right-hand side bound does not fit the solve's range "
                          f"(f_solve={f_solve})")
    xl = xm if clip_last else xk
    return SolvePlan(a, b, xm, tau, clip_last, d * xl * (b + 1) + 2.0 ** -f, first)


async def newton_schulz_solve(s: Session, A: MShare, b: MShare, trace_bound: float, *, iters: int,
                              f: int = DEFAULT_F, f_solve: int = 20,
                              bounds: tuple[float, float] | None = None) -> MShare:
    """_base.newton_schulz_solve on MShares: X_{k+1} = X_k (2I - A X_k) from I / c, w = X_K b.

    bounds = (a, b): public bounds (real) of the honest |A_ij| and |b_i|. With them A and b
    are clipped to those bounds first and every iterate is kept in range (`solve_plan`): from
    its first_clip on, X_k and T_k = A X_k are clipped (one `clip_many` per iteration),
    and w = trunc(X_K bh, f_solve - f) + trunc(X_K bl, f_solve) with b = bh 2^f + bl (bh =
    trunc(b, f)). Without bounds the products are formed directly (range unchecked: a
    cheater's A drives the iterates out of the truncation's range).
    Rounds: 10 (masks) + 6 per iteration + 3; with bounds + 13 (clip of A, b) + 13 per
    iteration from first_clip on (4 for d = 3, 10) + 3 (the split product) (+ 13 if the last iterate is clipped).
    Raises: ShapeMismatch, ConfigError (f_solve < f, or no clip keeps the solve in range)."""
    d = A.shape[0]
    if A.shape != (d, d) or b.shape != (d,):
        raise ShapeMismatch(f"solve: A {A.shape}, b {b.shape}")
    if f_solve < f:
        raise ConfigError("f_solve must be >= f")
    eye2 = np.eye(d, dtype=np.int64) * (2 << f_solve)
    x0 = np.eye(d, dtype=np.int64) * int(round((1 << f_solve) / trace_bound))
    if bounds is None:
        await prepare_batch(s, {f_solve: 2 * iters * d * d + d})
        A, b = await refresh_many(s, A, b)
        As = A * (1 << (f_solve - f))
        X = await const(s, x0, (d, d))
        for _ in range(iters):
            T = await mal.trunc(s, await mal.matmul(s, As, X), f_solve)
            X = await mal.trunc(s, await mal.matmul(s, X, (-T) + eye2), f_solve)
        return await mal.trunc(s, await mal.matmul(s, X, b), f_solve)
    P = solve_plan(s.domain, d, a=bounds[0], b=bounds[1], trace_bound=trace_bound, f=f, f_solve=f_solve,
                   iters=iters)
    am, bm = int(P.a * (1 << f)), int(P.b * (1 << f))
    xm, tm = int(P.xm * (1 << f_solve)), int(P.tau * (1 << f_solve))
    clips = 2 * (d * d + d) + 4 * d * d * max(iters - P.first_clip, 0) + (2 * d * d if P.clip_last else 0)
    truncs = {f_solve: 2 * iters * d * d + d, f: d}
    if f_solve > f:
        truncs[f_solve - f] = truncs.get(f_solve - f, 0) + d
    await prepare_batch(s, truncs, clips)
    # clip: A and b to the honest bounds (a cheater's moments / columns reach 2^38 and more)
    A, b = await clip_many(s, [(A, -am, am), (b, -bm, bm)])
    As = A * (1 << (f_solve - f))
    X = await const(s, x0, (d, d))
    for it in range(iters):
        # bound: d a |X| s^2 < LIM for |X| <= XT (solve_plan)
        T = await mal.trunc(s, await mal.matmul(s, As, X), f_solve)
        if it >= P.first_clip:  # clip: the iterates to the honest bounds (solve_plan)
            X, T = await clip_many(s, [(X, -xm, xm), (T, -tm, tm)])
        # bound: d xm (2 + tau) s^2 < LIM
        X = await mal.trunc(s, await mal.matmul(s, X, (-T) + eye2), f_solve)
    if P.clip_last:
        (X,) = await clip_many(s, [(X, -xm, xm)])
    # bound: |X_K bh| < d XT s (b + 1), |X_K bl| < d XT s 2^(f+1)   (solve_plan)
    bh = await mal.trunc(s, b, f)
    b, bh, X = await refresh_many(s, b, bh, X)
    bl = b - bh * (1 << f)
    Pr = await mal.matmul(s, X, stack([bh, bl], 1))
    w = await mal.trunc(s, Pr[:, 1], f_solve)
    (Pr,) = await refresh_many(s, Pr)
    hi = Pr[:, 0] if f_solve == f else await mal.trunc(s, Pr[:, 0], f_solve - f)
    w, hi = await refresh_many(s, w, hi)
    return w + hi


async def _moments_horizontal(s: Session, X_local: np.ndarray | None, y_local: np.ndarray | None,
                              alpha: float, f: int, feature_scale: Any) -> tuple[Any, ...]:
    X = _as2d(X_local)
    if X is None or y_local is None:
        raise ConfigError("horizontal partition: every party passes X and y")
    W = mal.range_bits(s.domain)
    # saturated to X's range (the moments then fit their width): no refusal the analyst's
    # feature_scale can tune
    Xs = scaled_input(X, feature_scale, 2.0 ** (W - 1 - f) - 2.0**-f)
    y = np.asarray(y_local, dtype=np.float64).reshape(-1, 1)
    if len(y) != len(Xs):
        raise ShapeMismatch(f"X has {len(Xs)} rows, y has {len(y)}")
    N = await public_total(s, len(X))
    Z = np.hstack([Xs, y])
    d1 = Z.shape[1]
    d = d1 - 1
    g = f + REFINE_EXTRA
    mb = moment_bits(s.domain, f)
    B = horizontal_bounds(s.n, mb, f)
    local = np.concatenate([Z.sum(0) / N, (Z.T @ Z).ravel() / N])
    P = await sum_inputs(s, encode(s, local, f), bits=mb)
    # the masks' verification also settles the moments' range checks; the clips of m, cov and
    # the standardised covariances take 2 comparisons per element
    clips = 2 * (d1 + d * d + d + d * d)
    await prepare_batch(s, {f: d1 * d1 + 2 * d + d, g - f: d, 20: d, 24: 13 * d + 2 * d * d, 25: 2 * d, 36: d},
                        25 * d + clips)
    (P,) = await refresh_many(s, P)
    m, M = P[:d1], P[d1:].reshape(d1, d1)
    # clip: m is a sum of the parties' moment inputs (|.| < n 2^(moment_bits - 1), not tied
    # to any rows: m m^T reached 2^97); the mean of rows |x| < 2^(W-1) lies in this range
    (m,) = await clip_many(s, [(m, -(1 << (W - 1)), (1 << (W - 1)) - 1)])
    # bound: |m_i m_j| <= 2^(2W - 2) = 2^62 (trunc)
    outer = await mal.trunc(s, await mal.matmul(s, m.reshape(d1, 1), m.reshape(1, d1)), f)
    M, outer, m = await refresh_many(s, M, outer, m)
    cov = M - outer  # |cov| < n 2^(moment_bits - 1) + 2^(2W - 2 - f)
    # clip: the features' covariances to [-V, V] (var to [0, V)), V = 2^NORM_HI: inv_sqrt clips
    # var there anyway and beyond it (or for var < 0) the Newton refinement diverges; an
    # honest |cov_ij| <= sqrt(var_i var_j) < V. cov(x_i, y) to +-B.cxy (sd_i sd_y, honest)
    V = 1 << (NORM_HI + f)
    lo = np.full((d, d), -V, dtype=object)
    np.fill_diagonal(lo, 0)
    hi = np.full((d, d), V, dtype=object)
    np.fill_diagonal(hi, V - 1)
    cxy = int(B.cxy * (1 << f))
    C, cy = await clip_many(s, [(cov[:d, :d], lo, hi), (cov[:d, d], -cxy, cxy)])
    idx = np.arange(d)
    var = C[idx, idx]
    ch = await mal.trunc(s, cy, f)  # cov(x_i, y) split at f bits: |ch| <= B.cxy + 1
    var, ch = await refresh_many(s, var, ch)
    y0 = await inv_sqrt(s, var, f)
    var, y0 = await refresh_many(s, var, y0)
    istd = await refine_inv_sqrt(s, var, y0, f, REFINE_EXTRA)  # < ISTD_MAX 2^g
    C, cy, ch, istd, m = await refresh_many(s, C, cy, ch, istd, m)
    cl = cy - ch * (1 << f)
    # bound: |C_ij istd_j| < 2^(NORM_HI + f) ISTD_MAX 2^g = 2^61.2; |cl istd| < 2^(f+1) 2^(g+6);
    # |ch istd| < (B.cxy + 1) ISTD_MAX 2^g (2^53.5 for n = 3)
    lhs = concat([C.reshape(-1), cl, ch])
    rhs = concat([bcast(istd, (d, d)).reshape(-1), istd, istd])
    raw = await mal.mul(s, lhs, rhs)
    prod = await mal.trunc(s, raw[: d * d + d], g)  # Cov_ij / sd_j, and cov(x_i, y)'s low part / sd_i
    (raw,) = await refresh_many(s, raw)
    bh = await mal.trunc(s, raw[d * d + d :], g - f)
    prod, bh, istd = await refresh_many(s, prod, bh, istd)
    b = prod[d * d :] + bh
    # clip: Cov_ij / sd_j to +-B.prod (honest: about sd_i < 2^(NORM_HI / 2)); then
    # bound: |prod istd| < B.prod 2^f ISTD_MAX 2^g < LIM
    pb = int(B.prod * (1 << f))
    (pc,) = await clip_many(s, [(prod[: d * d], -pb, pb)])
    pc, istd = await refresh_many(s, pc, istd)
    corr = await fixed_mul(s, pc, bcast(istd.reshape(d, 1), (d, d)).reshape(-1), g)
    corr, b, istd, m = await refresh_many(s, corr, b, istd, m)
    A = corr.reshape(d, d) + pub(np.eye(d) * alpha / N, f)
    # honest |A_ij| <= |corr_ij| + alpha / N (correlations, with the 1/sd's error) and
    # |b_i| = |cov(x_i, y)| / sd_i <= sd_y: the solve clips A and b to these
    bounds = (B.corr + alpha / N, B.b)
    return A, b, m[:d], istd, g, m[d], d * (1 + alpha / N), N, d, bounds, (float(ISTD_MAX), 2.0 ** (W - 1 - f))


@dataclass(frozen=True)
class HorizontalBounds:
    """Public bounds (real) of honest intermediates of the horizontal closed form, from the
    moment inputs' width: sd_y^2 <= E[y^2] < n 2^(moment_bits - 1 - f), var_x < 2^NORM_HI."""

    cxy: float   # |cov(x_i, y)| <= sd_i sd_y
    prod: float  # |Cov_ij / sd_j| <= sd_i (1/sd within ~1%)
    corr: float  # |corr_ij| <= 1 (each 1/sd within ~1%)
    b: float     # |cov(x_i, y) / sd_i| <= sd_y


def horizontal_bounds(n: int, moment_bits: int, f: int) -> HorizontalBounds:
    """`HorizontalBounds` for n parties (pure)."""
    sdy = math.sqrt(n * 2.0 ** (moment_bits - 1 - f))
    sdx = 2.0 ** (NORM_HI / 2)
    return HorizontalBounds(cxy=sdx * sdy * 1.01, prod=2 * sdx, corr=1.125, b=sdy * 1.125)


async def _moments_vertical(s: Session, X_local: np.ndarray | None, y_local: np.ndarray | None,
                            alpha: float, f: int) -> tuple[Any, ...]:
    P = await prepare_vertical(s, X_local, y_local, binary=False, f=f, center_y=True)
    N, d = P.N, P.d
    k = max(0, int(round(np.log2(N))))
    assert P.ybar is not None
    Xs, ys = await refresh_many(s, P.X, P.y)
    rhs = concat([Xs, ys.reshape(N, 1)], 1)
    # bound: the declared widths of the columns and y (prepare_vertical, rows_bits)
    G = await mal.trunc(s, await mal.matmul(s, Xs.T, rhs), f + k)
    A = G[:, :d] + pub(np.eye(d) * alpha / 2.0**k, f)
    # honest (exactly standardised columns, centred y): |A_ij| <= r |corr_ij| + alpha / 2^k and
    # |b_i| <= r rms(y) <= r max|y|, r = N / 2^k: the solve clips A and b to these
    r = N / 2.0**k
    bounds = (r * 1.125 + alpha / 2.0**k, r * 1.125 * P.y_bound)
    return (A, G[:, d], P.mu, P.istd, P.istd_f, P.ybar, d * r + alpha / 2.0**k, N, d, bounds,
            (P.istd_bound, P.mu_bound))


async def fit_closed_form(
    s: Session, X_local: np.ndarray | None, y_local: np.ndarray | None, *,
    partition: str = "horizontal", alpha: float = 0.0, f: int = DEFAULT_F,
    solver_iters: int = 24, f_solve: int = 20, feature_scale: Any = None, model: str = "ridge",
) -> MSharedModel:
    """linear.fit_closed_form with malicious security (module docstring)."""
    if alpha < 0:
        raise ConfigError("alpha must be >= 0")
    if partition == "horizontal":
        A, b, mu, istd, istd_f, ybar, trace, N, d, bounds, stats = await _moments_horizontal(
            s, X_local, y_local, alpha, f, feature_scale)
    elif partition == "vertical":
        A, b, mu, istd, istd_f, ybar, trace, N, d, bounds, stats = await _moments_vertical(
            s, X_local, y_local, alpha, f)
        feature_scale = None
    else:
        raise ConfigError(f"partition must be 'horizontal' or 'vertical', got {partition!r}")
    c = trace * 1.05
    plan = solve_plan(s.domain, d, a=bounds[0], b=bounds[1], trace_bound=c, f=f, f_solve=f_solve,
                      iters=solver_iters)
    w = await newton_schulz_solve(s, A, b, c, iters=solver_iters, f=f, f_solve=f_solve, bounds=bounds)
    w, mu, istd, ybar = await refresh_many(s, w, mu, istd, ybar)
    coef, intercept = await finish(s, w, mu, istd, istd_f, ybar, f, feature_scale,
                                   bounds=(plan.w_bound, *stats))
    return MSharedModel(model, coef, intercept, d, f, info={
        "n_samples": N, "partition": partition, "alpha": alpha, "solver": "closed_form",
        "solver_iters": solver_iters, "security": "malicious"})


__all__ = ["fit_closed_form", "newton_schulz_solve"]
