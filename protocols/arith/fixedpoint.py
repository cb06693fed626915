"""Fixed-point encoding of real numbers into a ring or field.

A real x is represented by the integer round(x * 2^f) in the domain (negatives as m - |v|).
The default f = 16 fractional bits gives a resolution of 2^-16 ~ 1.5e-5, enough for
gradient descent on standardised features; it is what CrypTen uses too.

Representable range: |x| < 2^(k - 1 - f), with k the bit length of the domain's signed
range (k = 64 for Z_2^64, so |x| < 2^47 ~ 1.4e14; k = 61 for GF(2^61 - 1), so |x| < 2^44).
Products of two encoded values carry 2f fractional bits and must stay in range before they
are truncated, so a fixed-point multiplication needs |x * y| < 2^(k - 1 - 2f) (2^31 on
Z_2^64 with f = 16); the truncation protocols state their own, tighter, bounds. Inputs
outside the range, NaN and +-inf raise `InputRangeError`: values never wrap silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocols.arith.domain import Domain
from protocols.errors import InputRangeError, ParameterError

DEFAULT_F = 16


@dataclass(frozen=True)
class FixedPoint:
    """Encoder for `domain` with `f` fractional bits. `max_abs` is the largest magnitude
    accepted by `encode` (defaults to the full representable range)."""

    domain: Domain
    f: int = DEFAULT_F
    max_abs: float | None = None

    def __post_init__(self) -> None:
        k = self.signed_bits
        if not 0 <= self.f < k - 1:
            raise ParameterError(f"fixed point: need 0 <= f < {k - 1} for {self.domain}, got f={self.f}")
        limit = float(2 ** (k - 1 - self.f))
        if self.max_abs is None:
            object.__setattr__(self, "max_abs", limit)
        elif not 0 < self.max_abs <= limit:
            raise ParameterError(f"fixed point: max_abs must be in (0, {limit:g}], got {self.max_abs}")

    @property
    def signed_bits(self) -> int:
        """k: the domain holds signed integers of magnitude below 2^(k-1)."""
        return (self.domain.modulus - 1).bit_length()

    @property
    def scale(self) -> int:
        return 1 << self.f

    @property
    def resolution(self) -> float:
        return 2.0**-self.f

    def encode(self, x: float | np.ndarray) -> np.ndarray:
        """Encode reals (rounded to nearest multiple of 2^-f). Raises InputRangeError."""
        arr = np.asarray(x)
        if arr.dtype == object or arr.dtype.kind not in "fiub":
            raise InputRangeError(f"fixed point: expected real numbers, got dtype {arr.dtype}")
        arr = arr.astype(np.float64, copy=False)
        bad = ~np.isfinite(arr)
        if bad.any():
            raise InputRangeError(f"fixed point: {int(bad.sum())} NaN or infinite value(s)")
        too_big = np.abs(arr) >= self.max_abs
        if too_big.any():
            raise InputRangeError(
                f"fixed point: {int(too_big.sum())} value(s) outside (-{self.max_abs:g}, "
                f"{self.max_abs:g}) (f={self.f}, domain {self.domain})"
            )
        scaled = np.rint(arr * self.scale)
        if self.signed_bits <= 53 or np.abs(scaled).max(initial=0) < 2.0**63:
            return self.domain.from_int(scaled.astype(np.int64))
        return self.domain.from_int(np.vectorize(int, otypes=[object])(scaled))

    def decode(self, v: np.ndarray) -> np.ndarray:
        """Decode domain elements (centered lift) back to float64."""
        signed = self.domain.to_signed(v)
        if signed.dtype == object:
            return np.vectorize(lambda i: i / self.scale, otypes=[np.float64])(signed)
        return signed.astype(np.float64) / self.scale
