"""The trainers of protocols.apps.ml with malicious security (Session.security ==
"malicious"), on Shamir sharing with an honest majority (t < n/2).

The algorithms are exactly the semi-honest trainers' (protocols.apps.ml.data / sgd / linear:
the same fixed-point encodings, standardisation, batch order, learning rates, piecewise
sigmoid, Newton-Schulz solve and the same truncation points), with every value an MShare of
protocols.malicious.chida18 [CGHIKLN18] and every product, truncation and comparison the
checked one (malicious.mul / matmul / trunc / ltz). The model is released only through
malicious.open / reveal_to, which verify every input, product and opening first: a cheater
in any of them makes every honest party raise CheatingDetectedError
(security.cheating_detected) and nothing is released.

  [CGHIKLN18] K. Chida, D. Genkin, K. Hamada, D. Ikarashi, R. Kikuchi, Y. Lindell, A. Nof,
              "Fast Large-Scale Honest-Majority MPC for Malicious Adversaries", CRYPTO 2018.
  [SecureML]  P. Mohassel, Y. Zhang, IEEE S&P 2017 (mini-batch SGD, piecewise sigmoid).
  [CS10]      O. Catrina, A. Saxena, FC 2010 (probabilistic truncation).

Differences from the semi-honest schedule (results equal the same fixed-point algorithm;
bits differ only where the probabilistic truncation's random rounding does):
- the update w -= trunc(upd) is applied at the end of each iteration (the semi-honest code
  fuses it with the next forward product, a preprocessing kind malicious Shamir lacks);
- truncation and comparison masks are made per epoch by `batch.prepare_batch` (one
  verification, 10 rounds; "offline"), after which the long-lived MShares (X, y, w) are
  re-keyed in one reduction;
- the per-party input shapes are agreed by an echo-checked broadcast (`batch.agree_ints`).
Rounds per SGD iteration with prepared masks: matmul 2 + sigmoid 12 (ltz 9, trunc 1,
product 2) + matmul 2 + trunc 1 = 17 (squared loss: 6). The final model's truncations
(`finish`) have their masks prepared in one batch too (`finish_truncs`).
Inputs are range-checked under MPC (issue 16; `input_all`): X and the moments/statistics with
widths derived from f and the sum lengths (`range_bits`, `rows_bits`, `moment_bits`; the
vertical 1/sd with ISTD_EXTRA more fractional bits), 0/1 labels and presence flags as one
unsigned bit; an owner outside its range is named (InputRangeCheatingError, check
"input.range") on every honest party before any masked opening.
Not covered (MaliciousUnsupportedError): the smooth sigmoid.
Security: malicious with abort, t < n/2; reveals what the semi-honest trainers reveal (N,
the shapes, the per-party row counts, the label owner, for class_weight="balanced" the
number of positive labels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protocols import malicious as mal
from protocols.apps.ml._base import decode, encode
from protocols.apps.ml.data import (
    ISTD_EXTRA,
    REFINE_EXTRA,
    _as2d,
    _encode_y,
    _scaled,
    local_standardize,
)
from protocols.apps.ml.sgd import K_LR, batches, learning_rates, sgd_params
from protocols.arith.domain import Domain
from protocols.arith.fixedpoint import DEFAULT_F
from protocols.errors import ConfigError, MaliciousUnsupportedError, ShapeMismatch
from protocols.malicious.batch import agree_ints, bcast, concat, const, prepare_batch, refresh_many
from protocols.malicious.chida18 import MShare
from protocols.malicious.nonlinear import (
    fixed_mul,
    inv_sqrt,
    piecewise_sigmoid_raw,
    refine_inv_sqrt,
)
from protocols.session import Session
from protocols.truncation import value_bits

# ------------------------------------------------------------------------ inputs ---
#: an input's declared width: bits (signed), or a function of the agreed shapes (party order)
Bits = int | Callable[[list[tuple[int, ...]]], int] | None


def rows_bits(D: Domain) -> Callable[[list[tuple[int, ...]]], int]:
    """The width for values that enter sums of products over all rows (vertical X^T X, X^T y;
    the SGD's gradient sums over a batch): `range_bits(D, N)` with N the largest row count."""
    return lambda shapes: mal.range_bits(D, max([1] + [sh[0] for sh in shapes if sh]))


def moment_bits(D: Domain, f: int) -> int:
    """The width of a second moment (1/N) sum x x' of f-bit fixed-point values of the default
    width w (|x| <= 2^(w-1)): |x x' / 2^f| <= 2^(2w - 2 - f), plus a sign bit and one of
    slack (48 for f = 16)."""
    return min(2 * (mal.range_bits(D) - 1) - f + 2, value_bits(D))


async def input_all(s: Session, x_local: np.ndarray | None, ndim: int, *, bits: Bits = None,
                    signed: bool = True) -> list[MShare | None]:
    """Every party's own domain array (`ndim` dimensions, shapes may differ; None or size 0 =
    nothing) as MShares, in party order (None for a party with nothing). The shapes are
    agreed first (`agree_ints`, 2 rounds); the inputs then run concurrently and are
    range-checked under MPC (`malicious.input_many`: `bits` signed bits, default
    `range_bits`; a cheating owner is named by InputRangeCheatingError at the next
    verification)."""
    mine = np.zeros(ndim, dtype=np.int64) if x_local is None else np.asarray(x_local.shape, dtype=np.int64)
    if mine.size != ndim:
        raise ShapeMismatch(f"input of {len(mine)} dimensions, expected {ndim}")
    table = await agree_ints(s, mine)
    shapes = [tuple(int(v) for v in table[j]) for j in range(s.n)]
    if any(v < 0 for sh in shapes for v in sh):
        raise ShapeMismatch(f"negative input shape announced: {shapes}")
    owners = {j: shapes[j] for j in range(s.n) if int(np.prod(shapes[j])) > 0}
    if not owners:
        return [None] * s.n
    w = bits(shapes) if callable(bits) else bits
    got = await mal.input_many(s, x_local if s.pid in owners else None, owners, bits=w, signed=signed)
    return [got.get(j) for j in range(s.n)]


async def sum_inputs(s: Session, x_local: np.ndarray, *, bits: Bits = None) -> MShare:
    """The sum of every party's array of one public shape (only the sum is formed)."""
    parts = [p for p in await input_all(s, x_local, x_local.ndim, bits=bits) if p is not None]
    for p in parts:
        if p.shape != x_local.shape:
            raise ShapeMismatch(f"sum_inputs: party inputs differ in shape ({p.shape} vs {x_local.shape})")
    acc = parts[0]
    for p in parts[1:]:
        acc = acc + p
    return acc


async def public_total(s: Session, count: int) -> int:
    """sum of every party's count, opened (verified) to all; the counts stay hidden."""
    tot = await sum_inputs(s, s.public(np.array([int(count)])))
    (v,) = await mal.open(s, tot)
    return int(s.domain.to_signed(v)[0])


# --------------------------------------------------------------------- prepared ---
@dataclass
class Prepared:
    X: MShare
    y: MShare
    mu: MShare
    istd: MShare
    istd_f: int
    N: int
    d: int
    ybar: MShare | None = None


def _cat_rows(parts: list[MShare | None]) -> MShare:
    got = [p for p in parts if p is not None]
    if not got:
        raise ConfigError("no party holds any rows")
    return concat(got, 0)


async def prepare_horizontal(
    s: Session, X_local: np.ndarray | None, y_local: np.ndarray | None, *, binary: bool, f: int,
    feature_scale: Any = None, standardize: bool = True,
) -> Prepared:
    """data.prepare_horizontal on MShares: N opened, every party's rows input, mu and 1/sd
    from the summed local moments (inv_sqrt + two Newton refinements), standardised rows."""
    X = _as2d(X_local)
    if X is None or y_local is None:
        raise ConfigError("horizontal partition: every party passes its rows X and labels y")
    Xs = _scaled(X, feature_scale)
    y = np.asarray(y_local).reshape(-1)
    if len(y) != len(X):
        raise ShapeMismatch(f"X has {len(X)} rows, y has {len(y)}")
    N = await public_total(s, len(X))
    d = X.shape[1]
    g = f + REFINE_EXTRA
    xs = await input_all(s.child("x"), encode(s, Xs, f), 2)
    ys = await input_all(s.child("y"), _encode_y(s, y, binary, f), 1, bits=1 if binary else None,
                         signed=not binary)
    for p in xs:
        if p is not None and p.shape[1] != d:
            raise ShapeMismatch(f"horizontal partition: parties disagree on the features ({p.shape})")
    Xsh, ysh = _cat_rows(xs), _cat_rows(ys)
    if not standardize:
        mu = await const(s, 0, (d,))
        istd = mu + (1 << g)
        return Prepared(Xsh, ysh, mu, istd, g, N, d)
    local = np.concatenate([Xs.sum(0) / N, (Xs * Xs).sum(0) / N])
    tot = await sum_inputs(s.child("st"), encode(s, local, f), bits=moment_bits(s.domain, f))
    # masks for the statistics and the standardisation, under one verification (which also
    # settles every input's range check, so no masked opening needs one of its own)
    await prepare_batch(s, {f: 3 * d, 20: d, 24: 12 * d + N * d, 25: 2 * d, 36: d}, 25 * d)
    (tot,) = await refresh_many(s, tot)
    mu, ex2 = tot[:d], tot[d:]
    var = ex2 - await fixed_mul(s, mu, mu, f)
    y0 = await inv_sqrt(s, var, f)
    var, y0 = await refresh_many(s, var, y0)
    istd = await refine_inv_sqrt(s, var, y0, f, REFINE_EXTRA)
    Xsh, ysh, mu, istd = await refresh_many(s, Xsh, ysh, mu, istd)
    Xsh = await fixed_mul(s, Xsh - bcast(mu, Xsh.shape), bcast(istd, Xsh.shape), g)
    ysh, mu, istd = await refresh_many(s, ysh, mu, istd)
    return Prepared(Xsh, ysh, mu, istd, g, N, d)


async def prepare_vertical(
    s: Session, X_local: np.ndarray | None, y_local: np.ndarray | None, *, binary: bool, f: int,
    center_y: bool = False, standardize: bool = True,
) -> Prepared:
    """data.prepare_vertical on MShares: each column's owner standardises it locally and
    inputs it with its mean and 1/sd; the label owner is found by one opened presence bit
    per party."""
    X = _as2d(X_local)
    if X is None:
        X = np.zeros((0, 0))
    flags = [p for p in await input_all(s.child("own"), s.public(np.array([int(y_local is not None)])), 1,
                                        bits=1, signed=False)]
    opened = await mal.open(s, *[p for p in flags if p is not None])
    owners = [j for j, v in enumerate(opened) if int(s.domain.to_signed(v)[0]) == 1]
    if len(owners) != 1:
        raise ConfigError(f"vertical partition: exactly one party must hold y, got {owners}")
    owner = owners[0]
    Xstd, mu, istd = local_standardize(X, standardize)
    ybar_v, yv = 0.0, None
    if y_local is not None:
        yy = np.asarray(y_local, dtype=np.float64).reshape(-1)
        if center_y:
            ybar_v = float(yy.mean())
            yy = yy - ybar_v
        yv = _encode_y(s, yy, binary, f)
    D = s.domain
    xs = await input_all(s.child("x"), encode(s, Xstd, f) if X.shape[1] else None, 2, bits=rows_bits(D))
    st = await input_all(s.child("m"), np.concatenate([encode(s, mu, f), encode(s, istd, f + ISTD_EXTRA)])
                         if X.shape[1] else None, 1, bits=mal.range_bits(D) + ISTD_EXTRA)
    ysh = await input_all(s.child("y"), yv if s.pid == owner else None, 1,
                          bits=1 if binary else rows_bits(D), signed=not binary)
    ybar = await input_all(s.child("b"), encode(s, np.array([ybar_v]), f) if s.pid == owner else None, 1)
    cols = [p for p in xs if p is not None]
    if not cols:
        raise ConfigError("vertical partition: no party holds any feature")
    y_m, yb_m = ysh[owner], ybar[owner]
    if y_m is None or yb_m is None:
        raise ConfigError("vertical partition: the label owner passed no labels")
    rows = {p.shape[0] for p in cols} | {y_m.shape[0]}
    if len(rows) != 1:
        raise ShapeMismatch(f"vertical partition: parties hold different row counts {sorted(rows)}")
    Xsh = concat(cols, 1)
    stats = [p for p in st if p is not None]
    mus = concat([p[: p.shape[0] // 2] for p in stats], 0)
    istds = concat([p[p.shape[0] // 2 :] for p in stats], 0)
    return Prepared(Xsh, y_m, mus, istds, f + ISTD_EXTRA, Xsh.shape[0], Xsh.shape[1], yb_m.reshape(()))


# -------------------------------------------------------------------------- SGD ---
async def sgd(
    s: Session, X: MShare, y: MShare, *, loss: str, y_is_bits: bool, batch_size: int, epochs: int,
    lr: float, schedule: str = "constant", lr_decay: float = 0.0, l2: float = 0.0,
    class_weight: tuple[float, float] = (1.0, 1.0), sigmoid: str = "piecewise",
    shuffle_seed: int | None = 0, f: int = DEFAULT_F,
) -> MShare:
    """protocols.apps.ml.sgd.sgd on MShares (module docstring): w (d + 1) with f bits."""
    if loss not in ("squared", "logistic"):
        raise ConfigError(f"unknown loss {loss!r}")
    if sigmoid != "piecewise":
        raise MaliciousUnsupportedError("malicious training has the piecewise sigmoid only (sigmoid='piecewise')")
    N, d = X.shape
    ones = await const(s, 1 << f, (N, 1))
    (X,) = await refresh_many(s, X)
    Xa = concat([X, ones], 1)
    (y,) = await refresh_many(s, y)
    yf = y * (1 << f) if y_is_bits else y
    c0, c1 = class_weight
    if (c0, c1) != (1.0, 1.0):
        if not y_is_bits:
            raise ConfigError("class weights apply to 0/1 labels")
        wt = y * int(round((c1 - c0) * (1 << f))) + int(round(c0 * (1 << f)))
        Xg = await fixed_mul(s, Xa, bcast(wt.reshape(N, 1), Xa.shape), f)
    else:
        Xg = Xa
    sched = batches(N, batch_size, epochs, shuffle_seed)
    rates = learning_rates(lr, schedule, len(sched), epochs, lr_decay)
    per = len(sched) // epochs
    l2mask = np.ones(d + 1)
    l2mask[d] = 0.0
    w = await const(s, 0, (d + 1,))
    for e in range(epochs):
        part = sched[e * per : (e + 1) * per] if e < epochs - 1 else sched[e * per :]
        rows = sum(len(i) for i in part)
        await prepare_batch(s, {f: rows, f + K_LR: len(part) * (d + 1)},
                            2 * rows if loss == "logistic" else 0)
        Xa, Xg, yf, w = await refresh_many(s, Xa, Xg, yf, w)
        XgT = Xg.T
        for idx, rate in zip(part, rates[e * per : e * per + len(part)], strict=True):
            B = len(idx)
            z_raw = await mal.matmul(s, Xa[idx], w)
            if loss == "logistic":
                p = await piecewise_sigmoid_raw(s, z_raw, f)
            else:
                p = await mal.trunc(s, z_raw, f)
            yb, p = await refresh_many(s, yf[idx], p)
            g = await mal.matmul(s, XgT[:, idx], p - yb)
            upd = g * int(round(rate / B * (1 << K_LR)))
            if l2:
                (w,) = await refresh_many(s, w)
                upd = upd + w * np.rint(rate * l2 * l2mask * (1 << (f + K_LR))).astype(np.int64)
            step = await mal.trunc(s, upd, f + K_LR)
            w, step = await refresh_many(s, w, step)
            w = w - step
            Xa, Xg, yf = await refresh_many(s, Xa, Xg, yf)  # no-ops unless masks ran out
            XgT = Xg.T
    return w


def finish_truncs(istd_f: int, f: int, d: int, feature_scale: Any = None) -> dict[int, int]:
    """{f: count} of the truncations `finish` makes, for `prepare_batch`."""
    t = {istd_f: d}
    t[f] = t.get(f, 0) + 1
    if feature_scale is not None:
        t[f + 20] = t.get(f + 20, 0) + d
    return t


async def finish(s: Session, w: MShare, mu: MShare, istd: MShare, istd_f: int, w0: MShare, f: int,
                 feature_scale: Any = None) -> tuple[MShare, MShare]:
    """linear.finish on MShares: coef = w / sd (/ scale), intercept = w0 - coef . mu."""
    cs = await mal.trunc(s, await mal.mul(s, w, istd), istd_f)
    (cs,) = await refresh_many(s, cs)
    shift = await mal.trunc(s, (await mal.mul(s, cs, mu)).sum().reshape(1), f)
    w0, shift, cs = await refresh_many(s, w0, shift, cs)
    intercept = (w0.reshape(1) - shift).reshape(())
    coef = cs
    if feature_scale is not None:
        C = np.rint(np.broadcast_to(1.0 / np.asarray(feature_scale, dtype=np.float64), cs.shape) * (1 << (f + 20)))
        coef = await mal.trunc(s, cs * C.astype(np.int64), f + 20)
        coef, intercept = await refresh_many(s, coef, intercept)
    return coef, intercept


# ------------------------------------------------------------------------ model ---
@dataclass
class MSharedModel:
    """A fitted model as MShares: released only through the verified openings."""

    model: str
    coef: MShare
    intercept: MShare
    n_features: int
    f: int = DEFAULT_F
    info: dict[str, Any] = field(default_factory=dict)

    def _unpack(self, s: Session, v: np.ndarray) -> tuple[np.ndarray, float]:
        vals = decode(s, v, self.f)
        return vals[:-1], float(vals[-1])

    async def _packed(self, s: Session) -> MShare:
        coef, b = await refresh_many(s, self.coef, self.intercept)
        return concat([coef, b.reshape(1)])

    async def reveal_to(self, s: Session, party: int) -> tuple[np.ndarray, float] | None:
        """(coef, intercept) at `party` after the verification, None elsewhere."""
        v = await mal.reveal_to(s, await self._packed(s), party)
        return None if v is None else self._unpack(s, v)

    async def reveal(self, s: Session) -> tuple[np.ndarray, float]:
        """(coef, intercept) at every party after the verification."""
        (v,) = await mal.open(s, await self._packed(s))
        return self._unpack(s, v)


async def fit_sgd(s: Session, model: str, X_local: np.ndarray | None, y_local: np.ndarray | None,
                  partition: str, f: int, alpha: float, hp: dict[str, Any]) -> MSharedModel:
    """protocols.apps.ml._fit_sgd with malicious security."""
    binary = model == "logistic"
    standardize = bool(hp.get("standardize", True))
    if partition == "horizontal":
        P = await prepare_horizontal(s, X_local, y_local, binary=binary, f=f,
                                     feature_scale=hp.get("feature_scale"), standardize=standardize)
        scale = hp.get("feature_scale")
    else:
        P = await prepare_vertical(s, X_local, y_local, binary=binary, f=f, standardize=standardize)
        scale = None
    n_pos = None
    if binary and hp.get("class_weight") == "balanced":
        (tot,) = await mal.open(s, P.y.sum().reshape(1))
        n_pos = int(s.domain.to_signed(tot)[0])
    w = await sgd(s, P.X, P.y, **sgd_params(hp, binary=binary, alpha=alpha, N=P.N, n_pos=n_pos, f=f))
    d = P.d
    await prepare_batch(s, finish_truncs(P.istd_f, f, d, scale))  # else `trunc` makes them inline
    w, mu, istd = await refresh_many(s, w, P.mu, P.istd)
    coef, intercept = await finish(s, w[:d], mu, istd, P.istd_f, w[d], f, scale)
    info = {"n_samples": P.N, "partition": partition, "solver": "sgd", "security": "malicious", **hp}
    return MSharedModel(model, coef, intercept, d, f, info=info)


__all__ = ["MSharedModel", "fit_sgd", "input_all", "prepare_horizontal", "prepare_vertical", "public_total", "sgd"]
