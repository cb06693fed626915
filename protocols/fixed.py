"""Fixed-point products that truncate: mul, square, matmul, and products with public reals.

Values are shared integers X = round(x * 2^f) (protocols.arith.fixedpoint). A product of two
carries 2f fractional bits; each function here multiplies with Beaver triples
(protocols.beaver) and then removes f bits with `truncation.trunc` (stochastic, unbiased
rounding; exact range, no wrap failures: see that module).

Error: with x~, y~ the values the shares encode (multiples of 2^-f), the decoded result z~ of
`mul` satisfies |z~ - x~*y~| < 2^-f and E[z~] = x~*y~; for `matmul` every output entry is
within 2^-f of the exact sum of products (one truncation per entry, after the exact sum).

Range (the precondition of the truncation, on the exact product before it): Z_2^64:
|x~*y~| < 2^(62-2f) (2^30 ~ 1.07e9 for f = 16); GF(p): |x~*y~| < 2^(l-1-2f) with
l = truncation.value_bits(domain) (2^31 on GF(2^127-1) with f = 16). For matmul the bound
applies to each output entry (intermediate sums wrap harmlessly). Nothing checks the secret
values: callers keep them in range (the nonlinear functions clip their inputs for that).

e = domain.elem_bytes, N = number of output elements below.
"""

from __future__ import annotations

import numpy as np

from protocols import beaver
from protocols.arith.fixedpoint import DEFAULT_F
from protocols.session import Session, Share
from protocols.truncation import check_product_room, trunc


async def mul(s: Session, x: Share, y: Share, f: int = DEFAULT_F) -> Share:
    """Fixed-point product: z = trunc(x * y, f) [Beaver91; truncation: EGKRS20 / CS10].

    Shapes: x, y: S; returns S.   Rounds: 2 (Beaver opening, truncation opening).
    Bytes: 3*(n-1)*N*e sent per party.   Error: |z~ - x~*y~| < 2^-f, unbiased.
    Range: |x~*y~| < 2^(62-2f) on Z_2^64, 2^(l-1-2f) on GF(p) (see the module docstring).
    Preprocessing: one triple of shape S and one truncation item of shape S.
    Security: semi-honest, as beaver.mul.   Raises: ShapeMismatch, ConfigError,
    PreprocessingExhausted, errors of `open`.
    """
    check_product_room(s.domain, f)
    return await trunc(s, await beaver.mul(s, x, y), f)


async def square(s: Session, x: Share, f: int = DEFAULT_F) -> Share:
    """Fixed-point square: z = trunc(x * x, f).

    Shapes: x: S; returns S.   Rounds: 2.   Bytes: 2*(n-1)*N*e sent per party.
    Error: |z~ - x~^2| < 2^-f.   Range: x~^2 < 2^(62-2f) (Z_2^64), 2^(l-1-2f) (GF(p)).
    Preprocessing: one square pair and one truncation item of shape S.   Raises: as `mul`.
    """
    check_product_room(s.domain, f)
    return await trunc(s, await beaver.square(s, x), f)


async def matmul(s: Session, x: Share, y: Share, f: int = DEFAULT_F) -> Share:
    """Fixed-point matrix product: Z = trunc(X @ Y, f), one truncation per output entry.

    Shapes: x: (k, d), y: (d, m) or (d,); returns (k, m) or (k,).   Rounds: 2.
    Bytes: (n-1)*(k*d + d*m + N)*e sent per party, N = k*m (or k).
    Error: each entry within 2^-f of the exact sum_j x~_ij * y~_jm, unbiased.
    Range: every exact output entry below 2^(62-2f) (Z_2^64) / 2^(l-1-2f) (GF(p)).
    Preprocessing: one matrix triple and one truncation item of the output shape.
    Raises: ShapeMismatch, ConfigError, PreprocessingExhausted, errors of `open`.
    """
    check_product_room(s.domain, f)
    return await trunc(s, await beaver.matmul(s, x, y), f)


def encode_public(s: Session, c: float | np.ndarray, f: int = DEFAULT_F) -> np.ndarray:
    """round(c * 2^f) as an int64 array (pure helper for public fixed-point constants)."""
    return np.rint(np.asarray(c, dtype=np.float64) * (1 << f)).astype(np.int64)


async def mul_public(s: Session, x: Share, c: float | np.ndarray, f: int = DEFAULT_F) -> Share:
    """Product with a public real (array) c: z = trunc(x * round(c * 2^f), f).

    Shapes: x: S, c: broadcastable to S; returns S.   Rounds: 1.   Bytes: (n-1)*N*e.
    Error: |z~ - x~*c| < 2^-f + |x~| * 2^-(f+1) (the second term from encoding c).
    Range: |x~*c| < 2^(62-2f) (Z_2^64), 2^(l-1-2f) (GF(p)).
    Preprocessing: one truncation item of shape S.   Raises: as `trunc`.
    """
    check_product_room(s.domain, f)
    C = encode_public(s, c, f)
    return await trunc(s, x * np.broadcast_to(C, x.shape), f)
