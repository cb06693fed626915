"""Shared plumbing of the training protocols: inputs from every party, fixed-point helpers,
the Newton-Schulz solve, and the SharedModel.

Everything here is async and session-first (or a pure helper without a session).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protocols import beaver
from protocols.arith.fixedpoint import DEFAULT_F, FixedPoint
from protocols.core import input as share_input
from protocols.core import open as open_shares
from protocols.core import reveal_to as core_reveal_to
from protocols.errors import ConfigError, ShapeMismatch
from protocols.session import Session, Share, concatenate
from protocols.truncation import trunc


def encode(s: Session, x: np.ndarray | float, f: int = DEFAULT_F) -> np.ndarray:
    """Fixed-point encode a public or private float array into the domain (pure helper)."""
    return FixedPoint(s.domain, f).encode(np.asarray(x, dtype=np.float64))


def pub(x: np.ndarray | float, f: int = DEFAULT_F) -> np.ndarray:
    """round(x * 2^f) as int64: a public fixed-point constant to add to a Share (pure)."""
    return np.rint(np.asarray(x, dtype=np.float64) * (1 << f)).astype(np.int64)


def decode(s: Session, v: np.ndarray, f: int = DEFAULT_F) -> np.ndarray:
    return FixedPoint(s.domain, f).decode(v)


def zeros(s: Session, shape: tuple[int, ...]) -> Share:
    return Share(s.domain.zeros(shape), s)


def const(s: Session, value: int | np.ndarray, shape: tuple[int, ...]) -> Share:
    """A public integer (array) as a Share (every party agrees, no communication)."""
    return zeros(s, shape) + np.broadcast_to(np.asarray(value, dtype=np.int64), shape)


def stack(s: Session, xs: list[Share], axis: int = 0) -> Share:
    return Share(np.stack([x.data for x in xs], axis=axis), s)


def bcast(x: Share, shape: tuple[int, ...]) -> Share:
    """Broadcast a share to `shape` (local; a copy, so later in-place ops are safe)."""
    return Share(np.ascontiguousarray(np.broadcast_to(x.data, shape)), x._s)


async def input_all(s: Session, x_local: np.ndarray | None) -> list[Share]:
    """Every party secret-shares its own domain array (shapes may differ; None = nothing,
    shared as an empty array). All n inputs run concurrently: one round.

    Returns the n shares in party order. Rounds: 1 (plus the shape announcement).
    Bytes: each party sends (n-1) * N_own * e.
    """
    mine = x_local if x_local is not None else s.domain.zeros((0,))

    async def one(j: int) -> Share:
        return await share_input(s.child(f"in{j}"), mine if j == s.pid else None, owner=j)

    return list(await asyncio.gather(*(one(j) for j in range(s.n))))


async def sum_inputs(s: Session, x_local: np.ndarray) -> Share:
    """Every party inputs an array of the same shape; the share of their sum (1 round).
    Reveals nothing but the shape: only the sum is ever formed."""
    parts = await input_all(s, x_local)
    shape = x_local.shape
    for p in parts:
        if p.shape != shape:
            raise ShapeMismatch(f"sum_inputs: party inputs differ in shape ({p.shape} vs {shape})")
    acc = parts[0]
    for p in parts[1:]:
        acc = acc + p
    return acc


async def public_total(s: Session, count: int) -> int:
    """The sum of every party's public-to-itself integer `count`, opened to all; the
    individual counts stay hidden. Rounds: 2."""
    tot = await sum_inputs(s, s.public(np.array([int(count)])))
    (v,) = await open_shares(s, tot)
    return int(s.domain.to_signed(v)[0])


async def trunc_to(s: Session, x: Share, bits: int) -> Share:
    return x if bits == 0 else await trunc(s, x, bits)


async def newton_schulz_solve(
    s: Session, A: Share, b: Share, trace_bound: float, *, iters: int, f: int = DEFAULT_F,
    f_solve: int = 20,
) -> Share:
    """Solve A w = b for symmetric positive definite shared A (d x d) and b (d,) by the
    Newton-Schulz iteration for the inverse [Schulz 1933; Pan and Schreiber, SIAM J. Sci.
    Stat. Comput. 12(5), 1991], the inverse-free matrix method used for secure ridge
    regression by, e.g., Nikolaenko et al. (IEEE S&P 2013) and Gascon et al. (PETS 2017):

        X_0 = I / c  (c = trace_bound >= lambda_max(A), public),
        X_{k+1} = X_k (2I - A X_k),   w = X_K b

    Convergence: E_k = I - A X_k satisfies E_{k+1} = E_k^2 with eigenvalues of E_0 in
    [0, 1 - lambda_min/c], so ||E_K|| <= (1 - lambda_min/c)^(2^K): K >=
    log2((c / lambda_min) * ln(1/eps)) iterations reach eps (K = 24 covers c/lambda_min up to
    ~10^6 at eps = 2^-16). The iteration is self-correcting: rounding errors of one step are
    squared away by the next, so the error floor is about kappa * 2^-f_solve in the inverse.
    Range (the conditioning limit): every entry of A X_k and of X_k (2I - A X_k) must stay
    below 2^(62 - 2 f_solve) (2^22 with f_solve = 20), i.e. d / lambda_min(A) < 2^22 roughly.

    Shapes: A (d, d), b (d,); returns w (d,) with f fractional bits.
    Rounds: 4 per iteration + 2.   Bytes: 2 * iters * (n-1) * 3 d^2 * e + small.
    Preprocessing: 2 d x d matrix triples and 2 truncations of d^2 per iteration.
    """
    d = A.shape[0]
    if A.shape != (d, d) or b.shape != (d,):
        raise ShapeMismatch(f"solve: A {A.shape}, b {b.shape}")
    if f_solve < f:
        raise ConfigError("f_solve must be >= f")
    up = 1 << (f_solve - f)
    As = A * up
    eye2 = np.eye(d, dtype=np.int64) * (2 << f_solve)
    X = const(s, np.eye(d, dtype=np.int64) * int(round((1 << f_solve) / trace_bound)), (d, d))
    for _ in range(iters):
        T = await trunc(s, await beaver.matmul(s, As, X), f_solve)
        X = await trunc(s, await beaver.matmul(s, X, -T + eye2), f_solve)
    return await trunc(s, await beaver.matmul(s, X, b), f_solve)


@dataclass
class SharedModel:
    """A fitted linear model whose parameters stay secret-shared.

    coef: Share (n_features,), intercept: Share (), both fixed point with `f` fractional bits,
    in the units of the original (unstandardised) features. `info` holds public metadata
    (n_samples, iterations, partition, hyperparameters).
    """

    model: str
    coef: Share
    intercept: Share
    n_features: int
    f: int = DEFAULT_F
    info: dict[str, Any] = field(default_factory=dict)

    def _packed(self) -> Share:
        return concatenate([self.coef, self.intercept.reshape(1)])

    def _unpack(self, s: Session, v: np.ndarray) -> tuple[np.ndarray, float]:
        vals = decode(s, v, self.f)
        return vals[:-1], float(vals[-1])

    async def reveal_to(self, s: Session, party: int) -> tuple[np.ndarray, float] | None:
        """(coef, intercept) as floats at `party`, None at every other party (1 round)."""
        v = await core_reveal_to(s, self._packed(), party)
        return None if v is None else self._unpack(s, v)

    async def reveal(self, s: Session) -> tuple[np.ndarray, float]:
        """(coef, intercept) at every party (1 round)."""
        (v,) = await open_shares(s, self._packed())
        return self._unpack(s, v)
