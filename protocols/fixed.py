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
applies to each output entry (intermediate sums wrap harmlessly). The products do not check
the secret values: callers keep them in range (the nonlinear functions clip their inputs for
that) or call `check_range` where a secret could drift out (FixedPointOverflowError).

e = domain.elem_bytes, N = number of output elements below.
"""

from __future__ import annotations

import numpy as np

from protocols import beaver
from protocols.arith.fixedpoint import DEFAULT_F
from protocols.errors import FixedPointOverflowError, InputRangeError
from protocols.session import Session, Share
from protocols.truncation import check_product_room, trunc


async def mul(s: Session, x: Share, y: Share, f: int = DEFAULT_F) -> Share:
    """Fixed-point product: z = trunc(x * y, f) [Beaver91; truncation: EGKRS20 / CS10].

    Shapes: x, y: S; returns S.   Rounds: 2 (Beaver opening, truncation opening).
    Bytes: 3*(n-1)*N*e sent per party.   Error: |z~ - x~*y~| < 2^-f, unbiased.
    Range: |x~*y~| < 2^(62-2f) on Z_2^64, 2^(l-1-2f) on GF(p) (see the module docstring).
    Preprocessing: one triple of shape S and one truncation item of shape S.
    Security: semi-honest, as beaver.mul.   Raises: ShapeMismatch, ParameterError,
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
    Raises: ShapeMismatch, ParameterError, PreprocessingExhausted, errors of `open`.
    """
    check_product_room(s.domain, f)
    return await trunc(s, await beaver.matmul(s, x, y), f)


def encode_public(s: Session, c: float | np.ndarray, f: int = DEFAULT_F) -> np.ndarray:
    """round(c * 2^f) as an int64 array (public fixed-point constants). NaN, infinities and
    constants with |c| * 2^f >= 2^62 raise InputRangeError instead of wrapping."""
    arr = np.asarray(c, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise InputRangeError("public fixed-point constant is NaN or infinite")
    scaled = np.rint(arr * (1 << f))
    if (np.abs(scaled) >= 2.0**62).any():
        raise InputRangeError(f"public fixed-point constant too large for f={f}: |c| >= 2^{62 - f}")
    return scaled.astype(np.int64)


async def check_range(s: Session, x: Share, max_abs: float, f: int = DEFAULT_F) -> None:
    """Detect fixed-point values outside (-max_abs, max_abs): FixedPointOverflowError on
    every party if any element is out of range.

        B = round(max_abs * 2^f);  k = open(sum(ltz(B - 1 - x)) + sum(ltz(x + B - 1)))

    Use it where a secret intermediate could leave the range a later product or truncation
    needs (e.g. model weights after an epoch). Reveals only k, the number of out-of-range
    elements (0 in every run that continues).
    Shapes: x: S.   Rounds: rounds of `comparison.ltz` + 1.   Bytes: ltz on 2N elements,
    plus (n-1)*e for the opened count.   Raises: FixedPointOverflowError, InputRangeError.
    """
    from protocols import comparison, core
    from protocols.session import concatenate

    B = int(encode_public(s, max_abs, f)) - 1
    if B < 1:
        raise InputRangeError(f"check_range: max_abs={max_abs} is below the resolution 2^-{f}")
    flat = x.reshape(-1)
    flags = await comparison.ltz(s, concatenate([(-flat) + B, flat + B]))
    (k,) = await core.open(s, flags.sum())
    count = int(s.domain.to_signed(k))
    if count:
        raise FixedPointOverflowError(
            f"{count} fixed-point value(s) of shape {x.shape} outside (-{max_abs:g}, {max_abs:g})"
        )


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
