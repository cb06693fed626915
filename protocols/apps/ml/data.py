"""Getting each party's float data into shares, with secure feature standardisation.

Horizontal partition (each party holds rows with the same features): the total row count N
is opened (it is part of the model's public metadata; the per-party counts stay hidden);
every party inputs its *local* sums sum_i x_i / N and sum_i x_i^2 / N, so only the global
mean mu and variance var = E[x^2] - mu^2 are ever formed, as shares. 1/sd = inv_sqrt(var)
(protocols.nonlinear) and the shared rows are standardised as (x - mu) * (1/sd) by one
fixed-point product. Neither the global nor any party's statistics are revealed.
inv_sqrt's interval is [2^-8, 2^16): feature variances must lie in it; pass a public
`feature_scale` (e.g. the unit of a column from the shared schema) to bring columns there.

Vertical partition (each party holds some columns of the same, aligned rows): every column
has a single owner, which standardises it locally in float64 (its mean and sd are its own
data and are never revealed) and inputs the standardised column, its mean and 1/sd (the
latter with f + 16 fractional bits, for precise coefficients in original units).
The party holding y is found by opening one presence bit per party.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from protocols import beaver, fixed
from protocols.apps.ml._base import bcast, encode, input_all, public_total, sum_inputs
from protocols.arith.fixedpoint import DEFAULT_F
from protocols.core import open as open_shares
from protocols.errors import ConfigError, ShapeMismatch
from protocols.nonlinear import inv_sqrt
from protocols.session import Session, Share, concatenate
from protocols.truncation import trunc

#: extra fractional bits of the vertical owners' 1/sd inputs
ISTD_EXTRA = 16
#: extra fractional bits of the securely computed 1/sd (horizontal), after Newton refinement
REFINE_EXTRA = 8


async def refine_inv_sqrt(s: Session, v: Share, y0: Share, f: int = DEFAULT_F, steps: int = 2) -> Share:
    """Newton steps y <- y (3 - v y^2) / 2 for 1/sqrt(v), from y0 (f bits, e.g. inv_sqrt's
    output, whose 2^-f absolute resolution is a large relative error when 1/sd is small) to
    f + REFINE_EXTRA bits: the relative error e becomes ~1.5 e^2 per step.
    Range: y < 2^7 (y^2 2^(2(f+8)) < 2^62), v y^2 ~ 1.  Rounds: 6 per step."""
    g = f + REFINE_EXTRA
    y = y0 * (1 << REFINE_EXTRA)
    for _ in range(steps):
        y2 = await fixed.square(s, y, g)
        t = await trunc(s, await beaver.mul(s, v, y2), f)  # v y^2, g bits
        y = await fixed.mul(s, y, -t + (3 << g), g + 1)  # y (3 - v y^2) / 2
    return y


@dataclass
class Prepared:
    """Shared, standardised training data and the statistics to undo the standardisation."""

    X: Share  # (N, d) standardised, f bits
    y: Share  # (N,) f bits (regression) or integer 0/1 (classification)
    mu: Share  # (d,) feature means, f bits
    istd: Share  # (d,) 1 / sd, istd_f bits
    istd_f: int
    N: int
    d: int
    ybar: Share | None = None  # () mean of y (closed form only), f bits


def _as2d(X: np.ndarray | None) -> np.ndarray | None:
    if X is None:
        return None
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ShapeMismatch(f"X must be 2-d, got shape {X.shape}")
    return X


def _scaled(X: np.ndarray, feature_scale: npt.ArrayLike | None) -> np.ndarray:
    """X / feature_scale (None: X), feature_scale validated (`check_feature_scale`)."""
    if feature_scale is None:
        return X
    return X / check_feature_scale(feature_scale, X.shape[1])


def check_feature_scale(feature_scale: npt.ArrayLike, d: int) -> np.ndarray:
    """The analyst's feature_scale as float64, a scalar or one per column, every entry finite
    and non-zero (pure). Raises ConfigError / ShapeMismatch, on every party alike: it is a
    public parameter, checked before any input (a zero or NaN scale used to make a bank's
    input non-finite, refused by the bank depending on whether its value was 0)."""
    sc = np.asarray(feature_scale, dtype=np.float64)
    if sc.ndim and sc.shape != (d,):
        raise ShapeMismatch(f"feature_scale has shape {sc.shape}, X has {d} columns")
    if not np.all(np.isfinite(sc)) or np.any(sc == 0):
        raise ConfigError("feature_scale: every entry must be finite and non-zero")
    return sc


def scaled_input(X: np.ndarray, feature_scale: npt.ArrayLike | None, bound: float) -> np.ndarray:
    """A bank's rows as it inputs them: X / feature_scale with every finite value saturated
    to [-bound, bound] (pure; X unchanged for feature_scale None).

    The analyst picks feature_scale: a bank that refused a scaled value outside the input
    range (its job failing, or InputRangeRefusedError naming it) would tell the analyst
    whether max |x / scale| >= bound for a scale of its choice, one bit per job, and a
    binary search over jobs would recover the bank's extreme value outside any DP
    accounting. The bank saturates instead (effect: a value beyond bound * scale enters as
    bound * scale, as a winsorised feature). Unscaled data keeps its refusal (a fixed
    predicate of the data, which the analyst cannot tune), and so do NaN and infinities."""
    if feature_scale is None:
        return X
    Xs = _scaled(X, feature_scale)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(Xs), np.clip(Xs, -bound, bound), Xs)


def scale_bound(s: Session, f: int) -> float:
    """`scaled_input`'s bound for the semi-honest trainers: the largest |x| = 2^j - 2^-f whose
    square still encodes (the moments sum x^2 / N: 2^23 - 2^-16 on Z_2^64 with f = 16)."""
    k = (s.domain.modulus - 1).bit_length()
    return 2.0 ** ((k - 1 - f) // 2) - 2.0**-f


def _encode_y(s: Session, y: np.ndarray, binary: bool, f: int) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if binary:
        if not np.isin(y, (0.0, 1.0)).all():
            raise ConfigError("classification labels must be 0 or 1")
        return s.public(y.astype(np.int64))
    return encode(s, y, f)


async def horizontal_stats(s: Session, Xs: np.ndarray, N: int, f: int) -> tuple[Share, Share]:
    """(mu, 1/sd) of the union of all parties' rows, as shares; 1/sd with f + REFINE_EXTRA
    fractional bits. Rounds: 1 + square 2 + inv_sqrt 32 + refinement 12."""
    d = Xs.shape[1]
    local = np.concatenate([Xs.sum(0) / N, (Xs * Xs).sum(0) / N])
    tot = await sum_inputs(s, encode(s, local, f))
    mu, ex2 = tot[:d], tot[d:]
    var = ex2 - await fixed.square(s, mu, f)
    return mu, await refine_inv_sqrt(s, var, await inv_sqrt(s, var, f), f)


async def prepare_horizontal(
    s: Session, X_local: np.ndarray | None, y_local: np.ndarray | None, *, binary: bool,
    f: int = DEFAULT_F, feature_scale: npt.ArrayLike | None = None,
    standardize: bool = True,
) -> Prepared:
    """Shares of all parties' rows (concatenated in party order), standardised with the
    global statistics. Rounds: about 40 (stats, inputs in parallel with them, one product)."""
    X = _as2d(X_local)
    if X is None or y_local is None:
        raise ConfigError("horizontal partition: every party passes its rows X and labels y")
    Xs = scaled_input(X, feature_scale, scale_bound(s, f))
    y = np.asarray(y_local).reshape(-1)
    if len(y) != len(X):
        raise ShapeMismatch(f"X has {len(X)} rows, y has {len(y)}")
    N = await public_total(s, len(X))
    d = X.shape[1]

    async def stats() -> tuple[Share, Share]:
        if not standardize:
            z = Share(s.domain.zeros((d,)), s)
            return z, z + (1 << (f + REFINE_EXTRA))
        return await horizontal_stats(s.child("st"), Xs, N, f)

    async def rows() -> tuple[Share, Share]:
        xin = input_all(s.child("x"), encode(s, Xs, f))
        yin = input_all(s.child("y"), _encode_y(s, y, binary, f))
        xs, ys = await asyncio.gather(xin, yin)
        for p in xs:
            if p.ndim != 2 or p.shape[1] != d:
                raise ShapeMismatch(f"horizontal partition: parties disagree on the features ({p.shape})")
        return concatenate(xs, 0), concatenate(ys, 0)

    (mu, istd), (Xsh, ysh) = await asyncio.gather(stats(), rows())
    if standardize:
        Xsh = await fixed.mul(s, Xsh - bcast(mu, Xsh.shape), bcast(istd, Xsh.shape), f + REFINE_EXTRA)
    return Prepared(Xsh, ysh, mu, istd, f + REFINE_EXTRA, N, d)


async def label_owner(s: Session, has_y: bool) -> int:
    """The index of the single party holding y (opens one presence bit per party)."""
    flags = await input_all(s, s.public(np.array([int(has_y)])))
    opened = await open_shares(s, *flags)
    owners = [j for j, v in enumerate(opened) if int(s.domain.to_signed(v)[0]) == 1]
    if len(owners) != 1:
        raise ConfigError(f"vertical partition: exactly one party must hold y, got {owners}")
    return owners[0]


def local_standardize(X: np.ndarray, standardize: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(standardised X, mean, 1/sd) of one party's own columns (pure; constant columns get
    1/sd = 1)."""
    if not standardize:
        return X, np.zeros(X.shape[1]), np.ones(X.shape[1])
    mu = X.mean(0)
    sd = X.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    return (X - mu) / sd, mu, 1.0 / sd


async def prepare_vertical(
    s: Session, X_local: np.ndarray | None, y_local: np.ndarray | None, *, binary: bool,
    f: int = DEFAULT_F, center_y: bool = False,
    standardize: bool = True,
) -> Prepared:
    """Shares of the aligned rows with every party's standardised columns side by side (in
    party order). With center_y the label owner inputs y - ybar and ybar (closed form).
    Rounds: 3 (owner discovery, then all inputs in one round)."""
    X = _as2d(X_local)
    if X is None:
        X = np.zeros((0, 0))
    owner = await label_owner(s.child("own"), y_local is not None)
    Xstd, mu, istd = local_standardize(X, standardize)
    ybar_v = 0.0
    if y_local is not None:
        y = np.asarray(y_local, dtype=np.float64).reshape(-1)
        if center_y:
            ybar_v = float(y.mean())
            y = y - ybar_v
    stats_local = np.concatenate([encode(s, mu, f), encode(s, istd, f + ISTD_EXTRA)])

    async def do_inputs() -> tuple[list[Share], list[Share], tuple[Share, Share]]:
        return await asyncio.gather(
            input_all(s.child("x"), encode(s, Xstd, f) if X.shape[1] else None),
            input_all(s.child("m"), stats_local),
            _input_y(s.child("y"), owner, y if y_local is not None else None, binary, f, ybar_v),
        )

    xs, st, (ysh, ybar) = await do_inputs()
    cols = [p for p in xs if p.size]
    if not cols:
        raise ConfigError("vertical partition: no party holds any feature")
    Nrows = {p.shape[0] for p in cols} | {ysh.shape[0]}
    if len(Nrows) != 1:
        raise ShapeMismatch(f"vertical partition: parties hold different row counts {sorted(Nrows)}")
    Xsh = concatenate(cols, 1)
    d = Xsh.shape[1]
    mus, istds = [], []
    for p in st:
        k = p.shape[0] // 2
        mus.append(p[:k])
        istds.append(p[k:])
    mu_sh = concatenate([m for m in mus if m.size] or mus, 0)
    istd_sh = concatenate([i for i in istds if i.size] or istds, 0)
    return Prepared(Xsh, ysh, mu_sh, istd_sh, f + ISTD_EXTRA, Xsh.shape[0], d, ybar)


async def _input_y(
    s: Session, owner: int, y: np.ndarray | None, binary: bool, f: int, ybar: float
) -> tuple[Share, Share]:
    from protocols.core import input as share_input

    mine = s.pid == owner
    # the owner is the party that passed y (label_owner)
    yv = _encode_y(s, y, binary, f) if mine and y is not None else None
    ysh = await share_input(s.child("v"), yv, owner)
    yb = await share_input(s.child("b"), encode(s, np.array(ybar), f) if mine else None, owner)
    return ysh, yb
