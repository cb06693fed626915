"""Shamir t-of-n secret sharing over a prime field [Shamir79].

Party i (0-based pid) holds f(x_i) of a random polynomial f of degree t with f(0) = secret;
x_i = pid + 1 by default. Any t + 1 shares determine the secret by Lagrange interpolation;
any t shares are uniformly distributed whatever the secret. Multiplication of two degree-t
sharings gives degree 2t, so protocols that multiply need n >= 2t + 1 (honest majority).

Sharing a whole array is one matrix product: shares = V @ [secret; r_1; ...; r_t] with V the
n x (t+1) Vandermonde matrix of the x-coordinates, written as n (t+1) vectorised
scalar-times-array products. Lagrange coefficients are computed once per set of
x-coordinates and cached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np

from protocols.arith.domain import PrimeField
from protocols.errors import ParameterError, PartyIndexError, ShapeMismatch, ShareInconsistencyError
from protocols.prg import CryptoRNG


def check_parameters(p: int, n: int, t: int, xs: Sequence[int], *, multiply: bool) -> None:
    """Validate threshold and x-coordinates; raise ParameterError / PartyIndexError."""
    if n < 2:
        raise ParameterError(f"Shamir sharing needs n >= 2 parties, got {n}")
    if not 1 <= t < n:
        raise ParameterError(f"Shamir threshold must satisfy 1 <= t < n = {n}, got t={t}")
    if multiply and 2 * t >= n:
        raise ParameterError(
            f"multiplication needs an honest majority, n >= 2t + 1: n={n}, t={t} "
            f"(largest allowed t is {(n - 1) // 2})"
        )
    if len(xs) != n:
        raise PartyIndexError(f"need {n} x-coordinates, got {len(xs)}")
    reduced = [int(x) % p for x in xs]
    if any(x == 0 for x in reduced):
        raise PartyIndexError(f"x-coordinates must be non-zero mod p: {list(xs)}")
    if len(set(reduced)) != n:
        raise PartyIndexError(f"x-coordinates must be distinct mod p: {list(xs)}")


@lru_cache(maxsize=1024)
def lagrange_coefficients(p: int, xs: tuple[int, ...], at: int = 0) -> tuple[int, ...]:
    """l_j(at) for the Lagrange basis on points xs, as Python ints mod p."""
    out = []
    for j, xj in enumerate(xs):
        num, den = 1, 1
        for m, xm in enumerate(xs):
            if m != j:
                num = num * (at - xm) % p
                den = den * (xj - xm) % p
        out.append(num * pow(den, -1, p) % p)
    return tuple(out)


def _combine(field: PrimeField, coeffs: Sequence[int], arrays: Sequence[np.ndarray]) -> np.ndarray:
    """sum_j coeffs[j] * arrays[j] in the field (coefficients public): `field.lincomb`."""
    return field.lincomb(coeffs, arrays)


class ShamirScheme:
    """Parameters of one Shamir sharing: field, n parties, threshold t, x-coordinates."""

    def __init__(
        self,
        field: PrimeField,
        n: int,
        t: int,
        xs: Sequence[int] | None = None,
        *,
        multiply: bool = True,
    ):
        xs = tuple(range(1, n + 1)) if xs is None else tuple(int(x) for x in xs)
        check_parameters(field.modulus, n, t, xs, multiply=multiply)
        self.field, self.n, self.t, self.xs = field, n, t, xs

    def __repr__(self) -> str:
        return f"ShamirScheme({self.field}, n={self.n}, t={self.t})"

    def share(self, rng: CryptoRNG, secret: np.ndarray) -> list[np.ndarray]:
        """Shares f(x_0), ..., f(x_{n-1}) of a fresh random degree-t polynomial."""
        F = self.field
        secret = F.check(np.asarray(secret))  # numpy scalars (0-d results) become 0-d arrays
        coeffs = [secret] + [F.random(rng, secret.shape) for _ in range(self.t)]
        p = F.modulus
        out = []
        for x in self.xs:
            powers = [pow(x, k, p) for k in range(self.t + 1)]
            out.append(_combine(F, powers, coeffs))
        return out

    def lagrange(self, pids: Sequence[int], at: int = 0) -> tuple[int, ...]:
        for pid in pids:
            if not 0 <= pid < self.n:
                raise PartyIndexError(f"party index {pid} outside 0..{self.n - 1}")
        return lagrange_coefficients(self.field.modulus, tuple(self.xs[i] for i in pids), at)

    def reconstruct(self, shares: Mapping[int, np.ndarray]) -> np.ndarray:
        """The secret from shares keyed by party index.

        Uses the first t + 1 parties (by index) to interpolate; every further share is
        checked to lie on the same degree-t polynomial, otherwise ShareInconsistencyError.
        Raises ParameterError with fewer than t + 1 shares, ShapeMismatch on unequal shapes.
        """
        pids = sorted(shares)
        if len(pids) < self.t + 1:
            raise ParameterError(f"need at least t+1 = {self.t + 1} shares, got {len(pids)}")
        if len({shares[i].shape for i in pids}) != 1:
            raise ShapeMismatch("Shamir shares have different shapes")
        base = pids[: self.t + 1]
        arrays = [shares[i] for i in base]
        extras = pids[self.t + 1 :]
        checks = [(self.lagrange(base, at=self.xs[extra]), shares[extra]) for extra in extras]
        # the field may compute the secret and check every further share in fused passes
        secret, failed = self.field.lincomb_checked(self.lagrange(base), arrays, checks)
        if failed is not None:
            raise ShareInconsistencyError(
                f"share of party {extras[failed]} is not on the degree-{self.t} polynomial "
                f"through parties {base}"
            )
        return secret
