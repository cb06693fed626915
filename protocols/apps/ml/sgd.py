"""Mini-batch gradient descent over shares for linear / ridge (squared loss) and logistic
regression, in the style of SecureML [Mohassel and Zhang, "SecureML: A System for Scalable
Privacy-Preserving Machine Learning", IEEE S&P 2017, sec. 4.1-4.3].

Per iteration on a batch B of rows of the standardised, shared X (a column of ones appended
for the intercept; weights w with f fractional bits):

    z   = X_B w                       one matrix-triple product, NOT truncated (2f bits);
                                      in the same round the previous iteration's update is
                                      truncated and applied (truncation.sub_trunc_matmul:
                                      the triple carries the truncation mask's products);
                                      free in the first iteration (w = 0 is public)
    p   = sigmoid(z)                  SecureML piecewise: clip(z + 1/2, 0, 1); the two
                                      comparisons run on the untruncated z (ltz is exact on
                                      every int64); trunc(z) is opened in the comparison's
                                      first message (comparison.OpenWith); the clip's
                                      products ride in the comparison's last round
          (squared loss: p = trunc(z))
    e   = p - y_B
    g   = Xw_B^T e                    one matrix-triple product, 2f bits (Xw = X * class weight)
    w  -= trunc(c1 * g + c2 * w, f + K)   one fused truncation, applied in the next
                                      iteration's first round (its own round after the last):
                                      c1 = round(lr_t / |B| 2^K), c2 = round(lr_t * l2 *
                                      2^(f+K)) (no L2 on the intercept)

Rounds per iteration: 1 (update + forward product) + 3 (ltz_mul, trunc(z) in its first
message) + 1 (gradient) = 5 with the piecewise sigmoid on Z_2^64 with ltz_tuples and
matrix_trunc_triples preprocessing; T iterations cost 5T rounds (the first saves its forward
round, the last update takes one). Without those kinds (dealer-free sources, GF(p)) the
truncation takes its own round and ltz_mul costs 8 (from edaBits, the product's opening
running concurrently with its AND levels): 1 + 1 + 8 + 1 = 11 (Stats counts two more, the
concurrent openings of trunc(z) and of the product; from random bits, as with the dealer
node on GF(p): 7 + 1 for ltz_mul, also 11). GF(p) with a source that has the field
matrix_trunc_triples (dn07; truncation.sub_trunc_matmul "cs") merges the first two:
1 + 8 + 1 = 10 (Stats 12)
(squared loss: 4 rounds, 3 with the fused kind); the smooth sigmoid (nonlinear.sigmoid)
costs 34 + 1 instead of 3 (Z_2^64).
Bytes per iteration and party, Z_2^64 with both kinds, d' = d + 1 (the intercept column):
(n-1) 8 [ (|B| d' + 2d') (update + forward) + 3|B| (comparisons' and trunc(z)'s first
opening) + 10|B| (the rest of ltz_mul on 2|B|) + (|B| d' + |B|) (gradient) ]
= (n-1) 8 (2|B|d' + 2d' + 14|B|).
Range: the fused update needs |g| * 2^(2f) * c1 < 2^62: with K = 20, |B| |x|max lr_t / |B|
... i.e. |lr_t * mean gradient| < 2^(62 - 2f - K) = 2^10 (f = 16).
Class weights: weight(y) = c0 + (c1 - c0) y is applied once to the rows used in the gradient
(Xw = X * weight(y), one product before training), so iterations cost nothing extra.
The batch order is public: a permutation per epoch from `shuffle_seed` (not secret: it
reveals nothing about the data and lets anyone rerun the same algorithm in float64,
protocols.apps.ml.reference).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import numpy as np

from protocols import beaver, fixed
from protocols.apps.ml._base import const, stack
from protocols.arith.fixedpoint import DEFAULT_F
from protocols.comparison import OpenWith, clip, ltz_mul
from protocols.errors import ConfigError
from protocols.nonlinear import sigmoid as smooth_sigmoid
from protocols.prg import CryptoRNG
from protocols.session import Session, Share, concatenate
from protocols.truncation import is_ring64, sub_trunc_matmul, trunc, trunc_finish, trunc_mask

#: extra bits of the public learning-rate constants in the fused update
K_LR = 20
#: bounds on one training's public schedule, checked before it is built: a job's parameters
#: come from an analyst, and epochs = 10^7 with batch_size = 1 would otherwise allocate the
#: whole schedule (and block the node) before anything else could refuse it. 10^6 steps are
#: >= 5 * 10^6 online rounds, far beyond any job deadline.
MAX_STEPS = 1_000_000
MAX_SAMPLES = 100_000_000
#: None, "balanced" or {0: c0, 1: c1}
ClassWeight: TypeAlias = str | Mapping[int, float] | None


def batches(N: int, batch_size: int, epochs: int, shuffle_seed: int | None) -> list[np.ndarray]:
    """The public batch schedule: per epoch a permutation (identity if shuffle_seed is None)
    cut into consecutive batches (the last may be smaller). Pure; shared with the float
    reference so both see the same data order."""
    if batch_size < 1 or epochs < 1:
        raise ConfigError("batch_size and epochs must be >= 1")
    steps = epochs * -(-N // batch_size)
    if steps > MAX_STEPS or epochs * N > MAX_SAMPLES:  # before allocating the schedule
        raise ConfigError(f"{epochs} epochs over {N} rows in batches of {batch_size} are "
                          f"{steps} SGD steps and {epochs * N} row visits; at most {MAX_STEPS} "
                          f"steps and {MAX_SAMPLES} row visits per training")
    # public and reproducible; drawn from the project's PRG (numpy's generators stay out of
    # protocols/), as a sort by random 64-bit keys
    rng = None if shuffle_seed is None else CryptoRNG.from_seed(shuffle_seed, "batch-order")
    out: list[np.ndarray] = []
    for _ in range(epochs):
        perm = np.arange(N) if rng is None else np.argsort(rng.uint64(N), kind="stable")
        out.extend(perm[i : i + batch_size] for i in range(0, N, batch_size))
    return out


def learning_rates(lr: float, schedule: str, n_batches: int, epochs: int, lr_decay: float) -> list[float]:
    """Public learning rate per iteration: "constant", "epoch_decay" (lr / (1 + decay * epoch))
    or "invscaling" (lr / sqrt(1 + decay * t)). Pure."""
    per = n_batches // epochs
    t = np.arange(n_batches)
    if schedule == "constant":
        r = np.full(n_batches, lr)
    elif schedule == "epoch_decay":
        r = lr / (1.0 + lr_decay * (t // per))
    elif schedule == "invscaling":
        r = lr / np.sqrt(1.0 + lr_decay * t)
    else:
        raise ConfigError(f"unknown learning-rate schedule {schedule!r}")
    return [float(v) for v in r]


def class_weights(class_weight: ClassWeight, n_pos: int | None, N: int) -> tuple[float, float]:
    """(c0, c1) from None, "balanced" (sklearn's N / (2 N_k), needs the opened class count)
    or a dict {0: c0, 1: c1}. Pure."""
    if class_weight is None:
        return 1.0, 1.0
    if class_weight == "balanced":
        if n_pos is None or not 0 < n_pos < N:
            raise ConfigError("class_weight='balanced' needs both classes present")
        return N / (2.0 * (N - n_pos)), N / (2.0 * n_pos)
    if isinstance(class_weight, str):
        raise ConfigError(f"class_weight must be None, 'balanced' or a dict, got {class_weight!r}")
    return float(class_weight.get(0, 1.0)), float(class_weight.get(1, 1.0))


def sgd_params(hp: Mapping[str, Any], *, binary: bool, alpha: float, N: int, n_pos: int | None,
               f: int) -> dict[str, Any]:
    """The keyword arguments of `sgd` (and of the malicious trainer's `sgd`) from a job's
    hyperparameters: the defaults of both trainers in one place. Pure."""
    cw = hp.get("class_weight")
    return {
        "loss": "logistic" if binary else "squared", "y_is_bits": binary,
        "batch_size": int(hp.get("batch_size", 64)), "epochs": int(hp.get("epochs", 10)),
        "lr": float(hp.get("lr", 0.5 if binary else 0.1)), "schedule": hp.get("schedule", "constant"),
        "lr_decay": float(hp.get("lr_decay", 0.0)),
        "l2": float(hp.get("l2", alpha / N if not binary else 0.0)),
        "class_weight": class_weights(cw, n_pos, N) if binary else (1.0, 1.0),
        "sigmoid": hp.get("sigmoid", "piecewise"), "shuffle_seed": hp.get("shuffle_seed", 0), "f": f,
    }


async def piecewise_sigmoid_raw(s: Session, z_raw: Share, f: int) -> Share:
    """SecureML's sigmoid of z given with 2f fractional bits, output with f bits:
    p = clip(z + 1/2, 0, 1) = u - b1 u - b2 u + b2 with u = trunc(z) + 1/2 and the two
    comparisons b1 = [z < -1/2], b2 = [z > 1/2] on the untruncated z (ltz is exact on every
    int64), batched in one comparison.ltz_mul whose products b_i * trunc(z) ride in its last
    round; trunc(z) runs concurrently with its first.
    Rounds: 3 on Z_2^64 with ltz_tuples (ltz_mul), 8 from edaBits, 7 + 1 from random bits."""
    h2 = 1 << (2 * f - 1)
    h, one = 1 << (f - 1), 1 << f
    cmp = stack(s, [z_raw + h2, -z_raw + h2])
    # trunc(z)'s opening rides in the comparison's first message (its item is fetched
    # first, so every party requests preprocessing in the same order)
    masked, item = await trunc_mask(s, z_raw, f)
    got: list[Share] = []

    def finish(opened: list[np.ndarray]) -> Share:
        got.append(trunc_finish(s, opened[0], item, f))
        return stack(s, [got[0], got[0]])

    bits, prod = await ltz_mul(s.child("c"), cmp, OpenWith((masked,), finish))
    t = got[0]
    # b_i * u = b_i * t + h * b_i
    return t + h - prod[0] - prod[1] - bits[0] * h + bits[1] * (one - h)


async def sgd(
    s: Session, X: Share, y: Share, *, loss: str, y_is_bits: bool, batch_size: int, epochs: int,
    lr: float, schedule: str = "constant", lr_decay: float = 0.0, l2: float = 0.0,
    class_weight: tuple[float, float] = (1.0, 1.0), sigmoid: str = "piecewise",
    shuffle_seed: int | None = 0, f: int = DEFAULT_F, residual_bound: float | None = None,
) -> Share:
    """Train w (d + 1: weights then intercept) by mini-batch gradient descent; see the module
    docstring for the protocol, rounds and range. X: (N, d) standardised, f bits; y: (N,)
    integer 0/1 (y_is_bits) or f-bit fixed point. Returns w with f fractional bits.
    residual_bound R (squared loss only): the Huber loss, e = clip(p - y, -R, R) under MPC
    (comparison.clip: one ltz_mul, +3 rounds per iteration on Z_2^64 with ltz_tuples), so
    the gradient is R |x|-Lipschitz (protocols.apps.ml.private)."""
    if loss not in ("squared", "logistic"):
        raise ConfigError(f"unknown loss {loss!r}")
    if sigmoid not in ("piecewise", "smooth"):
        raise ConfigError(f"sigmoid must be 'piecewise' or 'smooth', got {sigmoid!r}")
    if residual_bound is not None and (loss != "squared" or not residual_bound > 0):
        raise ConfigError("residual_bound: a bound > 0, for the squared loss only")
    rb = None if residual_bound is None else int(round(residual_bound * (1 << f)))
    N, d = X.shape
    Xa = concatenate([X, const(s, 1 << f, (N, 1))], 1)
    yf = y * (1 << f) if y_is_bits else y
    c0, c1 = class_weight
    if (c0, c1) != (1.0, 1.0):
        if not y_is_bits:
            raise ConfigError("class weights apply to 0/1 labels")
        wt = y * int(round((c1 - c0) * (1 << f))) + int(round(c0 * (1 << f)))  # f bits
        wt_b = Share(np.ascontiguousarray(np.broadcast_to(wt.data[:, None], Xa.shape)), s)
        Xg = await fixed.mul(s, Xa, wt_b, f)
    else:
        Xg = Xa
    sched = batches(N, batch_size, epochs, shuffle_seed)
    rates = learning_rates(lr, schedule, len(sched), epochs, lr_decay)
    w = const(s, 0, (d + 1,))
    XgT = Xg.T
    l2mask = np.ones(d + 1)
    l2mask[d] = 0.0
    XgTd = np.ascontiguousarray(XgT.data)  # rows of Xg^T: a batch's columns gather from here
    fused = is_ring64(s.domain) or s.domain.is_field  # GF(p): the "cs" variant
    upd: Share | None = None  # the previous iteration's update, not yet truncated and applied
    for idx, rate in zip(sched, rates, strict=True):
        B = len(idx)
        Xb = Xa[idx]
        if upd is None:  # the first iteration: w = 0 is public, so X_B w = 0 for free
            z_raw = const(s, 0, (B,))
        elif fused:  # w -= trunc(upd) and X_B w in one round
            w, z_raw = await sub_trunc_matmul(s, Xb, w, upd, f + K_LR)
        else:
            w = w - await trunc(s, upd, f + K_LR)
            z_raw = await beaver.matmul(s, Xb, w)
        if loss == "logistic":
            if sigmoid == "piecewise":
                p = await piecewise_sigmoid_raw(s, z_raw, f)
            else:
                p = await smooth_sigmoid(s, await trunc(s, z_raw, f), f)
        else:
            p = await trunc(s, z_raw, f)
        e = p - yf[idx]
        if rb is not None:  # Huber: the residual clipped to [-R, R]
            e = await clip(s.child("huber"), e, -rb, rb)
        g = await beaver.matmul(s, Share(XgTd.take(idx, axis=1), s), e)
        upd = g * int(round(rate / B * (1 << K_LR)))
        if l2:
            upd = upd + w * np.rint(rate * l2 * l2mask * (1 << (f + K_LR))).astype(np.int64)
    assert upd is not None  # batches() gives at least one batch
    return w - await trunc(s, upd, f + K_LR)
