"""Differentially private model coefficients: output perturbation of SGD-trained convex
models, with the noise generated jointly under MPC (protocols.apps.dp) and added to the
shared fixed-point weights before they are revealed or stored.

Analysis: Wu, Li, Kumar, Chaudhuri, Jha, Naughton, "Bolt-on Differential Privacy for Scalable
Stochastic Gradient Descent-based Analytics", SIGMOD 2017, Sec. 3 (convex case): permutation-
based SGD with k passes, constant step eta <= 2/beta, mini-batch size b, on a convex,
L-Lipschitz, beta-smooth loss, has L2-sensitivity

    Delta_2 <= 2 k L eta / b

for datasets that differ in one row (the same size N: "replace one"), because every step on
rows both datasets share is 1-expansive (Hardt, Recht, Singer, "Train faster, generalize
better", ICML 2016, Lemma 3.7) and the step on the differing row moves the two runs apart by
at most 2 L eta / b (Lemma 3.6, growth recursion). Output perturbation then releases
w + Z with Z discrete Gaussian (Delta_2 / sigma: rho-zCDP, Canonne-Kamath-Steinke 2020
Thm. 4 / Sec. 2.2) or discrete Laplace on L1-sensitivity sqrt(d + 1) Delta_2 (pure epsilon).

How the trainer is kept inside that analysis (what the code enforces, `regime`):

* features: each column is mapped by the public affine map of the policy's declared bounds
  [lo_j, hi_j] to [-1, 1], then clipped under MPC to [-1, 1] (comparison.clip, exact); the
  intercept column is 1. So |x|_2 <= sqrt(d + 1) is enforced, not assumed. (Standardising
  with data-dependent means would break the analysis: `standardize` and `feature_scale` are
  refused.)
* loss: logistic regression trains with SecureML's piecewise sigmoid p = clip(z + 1/2, 0, 1);
  the gradient (p - y) x is that of a convex surrogate F(z) - y z (F' = p non-decreasing,
  0 <= F'' <= 1), L = |x| (labels in {0, 1}), beta = |x|^2. Linear and ridge regression train
  the Huber loss: the residual is clipped under MPC to [-R, R] (`residual_bound` R, public),
  L = R |x|, beta = |x|^2. The smooth sigmoid, class weights and the closed-form solver are
  refused (outside the analysis).
* step: the constant schedule only. The update is w -= (c1 / 2^K) sum_B grad + c2 / 2^(f+K)
  w (sgd's public integers), i.e. eta(B) / b = c1 / 2^K exactly: the bound uses the
  integers the protocol uses, and the smallest (last) batch of a pass.
* deviation, L2 (ridge's alpha / N, logistic's l2): the regularised step is still 1-expansive
  when eta (beta + lambda) <= 2 (the objective is convex and (beta + lambda)-smooth), and the
  differing row still moves the runs apart by at most 2 L eta / b (the penalty is the same
  function in both runs); the bound above therefore holds as stated (it ignores the
  contraction that strong convexity would add, so it is conservative).
* deviation, fixed point: every truncation is off by less than one unit 2^-f (stochastic
  rounding; we allow 2), so each step deviates from the exact step by at most
  eps_step = 2^(1-f) sqrt(d + 1) (1 + eta Ly); with 1-expansive steps these errors add up in
  each run, so the bound adds 2 T eps_step (T steps). The truncation's rare failure (the
  probability that a masked value wraps, below 2^-(63 - |value bits|), as every fixed-point
  result here) is outside pure DP: with the Laplace mechanism the guarantee is epsilon-DP
  except on that event.
* deviation, range: the analysis assumes no wrap-around. The worst-case fused update and
  forward product over ANY data within the bounds and R must stay inside the truncation's
  exact range (|x| < 2^62, `_check_range`), else the settings are refused: a wrap on one
  dataset but not its neighbour moved the weights by several times the bound (review2).
* neighbouring datasets have the same size N (replace one row). N is public in our training
  (the parties learn it from the input shapes), so removing a row is visible anyway: this is
  bounded DP, as in the paper.

Settings outside this (a step above 2/(beta + lambda), a learning rate <= 0, another
schedule, the smooth sigmoid, class weights, the closed form, standardisation, no bounds)
raise ConfigError before any input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from protocols.apps import dp as dpm
from protocols.apps.ml._base import SharedModel, pub
from protocols.apps.ml.data import prepare_horizontal, prepare_vertical
from protocols.apps.ml.linear import mul_public_precise
from protocols.apps.ml.sgd import K_LR, batches, sgd
from protocols.arith.fixedpoint import DEFAULT_F
from protocols.comparison import clip
from protocols.errors import ConfigError
from protocols.fixed import mul_public
from protocols.session import Session, Share
from protocols.truncation import RING_TRUNC_BITS, trunc

#: the training keys a DP fit accepts (everything else is refused as outside the analysis)
_DP_HP = {"alpha", "l2", "solver", "batch_size", "epochs", "lr", "schedule", "sigmoid",
          "shuffle_seed"}


@dataclass(frozen=True)
class DPTerms:
    """dp = {"epsilon", "delta" (0), "mechanism" ("laplace" | "gaussian"), "bounds": [[lo,
    hi], ...] one per feature column (vertical: in party order), "residual_bound": R (linear
    and ridge only)}."""

    epsilon: float
    delta: float
    mechanism: str
    bounds: np.ndarray  # (d, 2)
    residual_bound: float | None

    @staticmethod
    def parse(dp: dict[str, Any], model: str) -> DPTerms:
        unknown = set(dp) - {"epsilon", "delta", "mechanism", "bounds", "residual_bound"}
        if unknown:
            raise ConfigError(f"dp: unknown keys {sorted(unknown)}")
        try:
            eps = float(dp["epsilon"])
            delta = float(dp.get("delta", 0.0))
            b = np.asarray(dp["bounds"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"dp: needs epsilon and bounds ([lo, hi] per feature): {e}") from None
        if not (math.isfinite(eps) and eps > 0) or not 0 <= delta < 1:
            raise ConfigError("dp: epsilon > 0 and 0 <= delta < 1")
        if b.ndim != 2 or b.shape[1] != 2 or not np.isfinite(b).all() or (b[:, 0] > b[:, 1]).any():
            raise ConfigError("dp.bounds: one finite [lo, hi] with lo <= hi per feature")
        mech = dp.get("mechanism", "laplace")
        if mech not in ("laplace", "gaussian") or (mech == "gaussian" and delta <= 0):
            raise ConfigError("dp.mechanism: 'laplace', or 'gaussian' with delta > 0")
        R = dp.get("residual_bound")
        if model == "logistic":
            if R is not None:
                raise ConfigError("dp.residual_bound: for linear and ridge regression only")
        else:
            if R is None or isinstance(R, bool) or not (math.isfinite(float(R)) and float(R) > 0):
                raise ConfigError("dp.residual_bound: linear and ridge regression with DP train "
                                  "the Huber loss: give the residual bound R > 0")
            R = float(R)
        return DPTerms(eps, delta, mech, b, R)


@dataclass(frozen=True)
class Regime:
    """The public training settings the sensitivity is computed from (`regime`)."""

    epochs: int
    batch_size: int
    lr: float
    l2: float
    shuffle_seed: int | None


def regime(model: str, hp: dict[str, Any], N: int | None = None) -> Regime:
    """The settings of a DP fit; ConfigError for anything outside the analysis (see the
    module docstring). Pure."""
    bad = set(hp) - _DP_HP
    if bad:
        raise ConfigError(f"dp: {sorted(bad)} not allowed with DP (outside the sensitivity "
                          "analysis: features are mapped by the policy bounds, unweighted)")
    if hp.get("solver", "sgd") not in ("sgd", "gd"):
        raise ConfigError("dp: only the gradient-descent solver (solver='sgd') has a sensitivity "
                          "analysis; the closed form is refused")
    if hp.get("schedule", "constant") != "constant":
        raise ConfigError("dp: only the constant learning-rate schedule is analysed")
    if hp.get("sigmoid", "piecewise") != "piecewise":
        raise ConfigError("dp: logistic regression with DP trains with sigmoid='piecewise'")
    alpha = float(hp.get("alpha", 1.0 if model == "ridge" else 0.0))
    l2 = float(hp.get("l2", alpha / N if (model != "logistic" and N) else 0.0))
    if not (math.isfinite(l2) and l2 >= 0):
        raise ConfigError("dp: l2 must be >= 0")
    rg = Regime(int(hp.get("epochs", 10)), int(hp.get("batch_size", 64)),
                float(hp.get("lr", 0.5 if model == "logistic" else 0.1)), l2,
                hp.get("shuffle_seed", 0))
    _check_lr(rg.lr)
    return rg


def _check_lr(lr: float) -> None:
    """The analysis is of gradient DEScent: a step that is not a finite positive number
    (lr <= 0: ascent, not 1-expansive, and a negative main term that shrinks the bound)
    is outside it."""
    if not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"dp: the learning rate must be a finite number > 0 (gradient "
                          f"descent), got {lr!r}")


def sensitivity(N: int, d: int, rg: Regime, Ly: float, f: int = DEFAULT_F) -> float:
    """The L2-sensitivity of the trained weights (d + 1, intercept last, in the mapped
    feature space) to replacing one row, for the protocol's exact step integers:

        2 L sum_passes max_B c1(B) / 2^K  +  2 T eps_step,   L = Ly sqrt(d + 1)

    (module docstring). Raises ConfigError when a step exceeds 2 / (beta + lambda) or the
    learning rate is not > 0. Pure."""
    _check_lr(rg.lr)
    if not (math.isfinite(rg.l2) and rg.l2 >= 0):
        raise ConfigError("dp: l2 must be >= 0")
    sched = batches(N, rg.batch_size, rg.epochs, rg.shuffle_seed)
    sizes = sorted({len(b) for b in sched})
    xn = math.sqrt(d + 1)
    beta = float(d + 1)
    c1 = {B: int(round(rg.lr / B * (1 << K_LR))) for B in sizes}
    c2 = float(np.rint(rg.lr * rg.l2 * (1 << (f + K_LR))))
    lam_eta = c2 / 2.0 ** (f + K_LR)  # eta * lambda as the protocol applies it
    etas = {B: c1[B] * B / 2.0**K_LR for B in sizes}
    for eta in etas.values():
        if eta * beta + lam_eta > 2:
            raise ConfigError(f"dp: learning rate {rg.lr:g} is above the analysed range: "
                              f"eta (beta + lambda) = {eta * beta + lam_eta:.3g} > 2 with beta = "
                              f"d + 1 = {beta:g} (use lr <= {2 / (beta + rg.l2):.3g})")
    _check_range(sched, c1, c2, d, Ly, f)
    per = len(sched) // rg.epochs
    main = 0.0
    for e in range(rg.epochs):
        main += max(c1[len(b)] for b in sched[e * per:(e + 1) * per]) / 2.0**K_LR
    main *= 2 * Ly * xn
    step = 2.0 ** (1 - f) * xn * (1 + max(etas.values()) * Ly)
    return main + 2 * len(sched) * step


def _check_range(sched: list[np.ndarray], c1: dict[int, int], c2: float, d: int, Ly: float,
                 f: int) -> None:
    """ConfigError unless sgd's values stay inside the truncation's exact range (|x| <
    2^RING_TRUNC_BITS) for ANY data within the mapped bounds and the residual bound: the
    analysis assumes exact arithmetic, and a wrap on one dataset but not on its neighbour
    moves the weights by ~2^(64 - f - K) units, far past the bound. Worst cases (|x_j| <= 1,
    |e| <= Ly; the L2 step |1 - eta lambda| <= 1 never grows w):
      |w_j| <= W = Ly sum_steps c1(B) B / 2^K,
      fused update |c1 X_B^T e + c2 w| <= max_B c1(B) B Ly 2^(2f) + c2 W 2^f,
      forward product |X_B w| <= (d + 1) W 2^(2f)."""
    lim = 2.0**RING_TRUNC_BITS
    W = Ly * sum(c1[len(b)] * len(b) for b in sched) / 2.0**K_LR
    upd = max(c1[len(b)] * len(b) for b in sched) * Ly * 2.0 ** (2 * f) + c2 * W * 2.0**f
    z = (d + 1) * W * 2.0 ** (2 * f)
    if not (upd < lim and z < lim):
        raise ConfigError(f"dp: these settings can leave the fixed-point range of training "
                          f"(update up to 2^{math.log2(max(upd, 1)):.1f}, forward product up to "
                          f"2^{math.log2(max(z, 1)):.1f}, exact below 2^{RING_TRUNC_BITS}): a "
                          "wrap would break the sensitivity bound; lower lr, residual_bound "
                          "or the number of steps")


def noise_for(terms: DPTerms, sens: float, d: int, f: int = DEFAULT_F) -> tuple[dpm.Noise, int]:
    """(the noise on every weight, g): the weights are released on the lattice 2^(g-f)
    (g low bits dropped under MPC before the noise, `release`), the noise is in units of
    2^(g-f). Laplace: g = 0, scale on the L1-sensitivity sqrt(d + 1) Delta_2 2^f (its
    sampler costs O(log scale) comparisons). Gaussian: the CDT sampler costs O(sigma)
    comparisons, so the weights are first rounded to the largest g with Delta_2 2^(f-g) >=
    16 sqrt(d + 1); rounding moves each coordinate by < 1 unit (stochastic rounding: two
    neighbouring results round to values at most |a - b| + 2 apart per coordinate), so the
    L2-sensitivity in those units is ceil(Delta_2 2^(f-g)) + 2 sqrt(d + 1). Pure."""
    xn = math.sqrt(d + 1)
    if terms.mechanism == "laplace":
        return dpm.calibrate("laplace", terms.epsilon, 0.0, math.ceil(xn * sens * 2.0**f)), 0
    g = max(0, min(f - 1, math.floor(math.log2(max(sens * 2.0**f / (16 * xn), 1.0)))))
    s_int = math.ceil(sens * 2.0 ** (f - g)) + 2 * xn
    return dpm.calibrate("gaussian", terms.epsilon, terms.delta, s_int), g


async def private_weights(
    s: Session, model: str, X_local: np.ndarray | None, y_local: np.ndarray | None,
    partition: str, f: int, terms: DPTerms, hp: dict[str, Any],
) -> tuple[Share, float, Regime, int]:
    """The trained weights w (d + 1, f bits, mapped space) before noise, their sensitivity,
    the regime and N. Inputs as protocols.apps.ml.train (no standardisation)."""
    binary = model == "logistic"
    regime(model, hp)  # refuse before any input
    if partition == "horizontal":
        P = await prepare_horizontal(s, X_local, y_local, binary=binary, f=f, standardize=False)
    else:
        P = await prepare_vertical(s, X_local, y_local, binary=binary, f=f, standardize=False)
    N, d = P.N, P.d
    if terms.bounds.shape != (d, 2):
        raise ConfigError(f"dp.bounds: {d} features need {d} [lo, hi] pairs, got "
                          f"{terms.bounds.shape[0]}")
    rg = regime(model, hp, N)
    Ly = 1.0 if binary else float(terms.residual_bound or 0.0)
    sens = sensitivity(N, d, rg, Ly, f)  # raises before training
    lo, hi = terms.bounds[:, 0], terms.bounds[:, 1]
    c, r = (lo + hi) / 2, (hi - lo) / 2
    inv_r = np.where(r > 0, 1.0 / np.where(r > 0, r, 1.0), 0.0)
    one = 1 << f
    Xm = await mul_public(s, P.X - pub(np.broadcast_to(c, P.X.shape), f),
                          np.broadcast_to(inv_r, P.X.shape), f)
    Xc = await clip(s.child("clip"), Xm, -one, one)  # |x_j| <= 1: L enforced under MPC
    w = await sgd(s, Xc, P.y, loss="logistic" if binary else "squared", y_is_bits=binary,
                  batch_size=rg.batch_size, epochs=rg.epochs, lr=rg.lr, l2=rg.l2,
                  sigmoid="piecewise", shuffle_seed=rg.shuffle_seed, f=f,
                  residual_bound=None if binary else Ly)
    return w, sens, rg, N


async def release(s: Session, w: Share, noise: dpm.Noise, g: int) -> Share:
    """(trunc(w, g) + Z) 2^g: w (any shape, f bits) rounded to the lattice 2^(g-f) under
    MPC, then fresh joint noise Z on every entry (protocols.apps.dp.add_noise), back in f-bit
    units. Rounds: the noise's, + 1 if g > 0 (the truncation)."""
    wc = await trunc(s.child("round"), w, g) if g else w
    return (await dpm.add_noise(s.child("noise"), wc, noise)) * (1 << g)


async def to_original(s: Session, w: Share, bounds: np.ndarray, f: int) -> tuple[Share, Share]:
    """(coef, intercept) in the original feature units from mapped-space weights
    (post-processing by public constants): coef_j = w_j / r_j, intercept = w_d - sum_j w_j
    c_j / r_j."""
    d = bounds.shape[0]
    lo, hi = bounds[:, 0], bounds[:, 1]
    c, r = (lo + hi) / 2, (hi - lo) / 2
    inv_r = np.where(r > 0, 1.0 / np.where(r > 0, r, 1.0), 0.0)
    coef = await mul_public_precise(s, w[:d], inv_r, f)
    shift = await mul_public_precise(s, w[:d], c * inv_r, f)
    return coef, (w[d].reshape(1) - shift.sum().reshape(1)).reshape(())


async def fit_dp(
    s: Session, model: str, X_local: np.ndarray | None, y_local: np.ndarray | None, *,
    partition: str, f: int, dp: dict[str, Any], hp: dict[str, Any],
) -> SharedModel:
    """Train with output perturbation (module docstring): the returned SharedModel's
    coefficients already carry the noise; its info["dp"] states mechanism, epsilon, delta,
    sensitivity and the noise's standard deviation (noise_std: per mapped-space weight;
    output_noise_std: per coefficient in original units, then the intercept).

    Rounds: the inputs, one mul_public, one clip (ltz_mul), sgd's, the noise's (one ltz + 1),
    two truncations. Preprocessing: sgd's + dp.add_noise's on d + 1 entries.
    Security: semi-honest; reveals N and the shapes (as train); the weights are never opened
    without noise. Raises: ConfigError (outside the analysis), as train.
    Reference: Wu et al. SIGMOD 2017 Sec. 3; CKS 2020 (module docstring)."""
    terms = DPTerms.parse(dp, model)
    w, sens, rg, N = await private_weights(s, model, X_local, y_local, partition, f, terms, hp)
    d = w.shape[0] - 1
    nz, g = noise_for(terms, sens, d, f)
    wn = await release(s, w, nz, g)
    coef, intercept = await to_original(s, wn, terms.bounds, f)
    std = nz.std() * 2.0 ** (g - f)  # per mapped weight; in original units below
    lo, hi = terms.bounds[:, 0], terms.bounds[:, 1]
    c, r = (lo + hi) / 2, (hi - lo) / 2
    cr = np.where(r > 0, c / np.where(r > 0, r, 1.0), 0.0)
    out_std = [float(std / v) if v > 0 else 0.0 for v in r] + \
        [float(std * math.sqrt(1 + float(cr @ cr)))]
    info = {"n_samples": N, "partition": partition, "solver": "sgd", **hp,
            "dp": {"mechanism": nz.mechanism, "epsilon": nz.epsilon, "delta": nz.delta,
                   "rho": nz.rho, "sensitivity": sens, "noise_std": std, "output_noise_std": out_std,
                   "neighbouring": "replace one row (N public)"}}
    return SharedModel(model, coef, intercept, d, f, info=info)
