"""Random bits, probabilistic truncation and fixed-point products for malicious Shamir.

Every value stays an MShare ([x], [r*x]) of protocols.malicious.chida18, so everything here
is covered by the same batched verification before any output [CGHIKLN18, sec. 3]:

- random bits by the square-root trick [DFKNT06, sec. 5]: a random MShare a, its square
  a^2 by the checked product, u = a^2 opened (with the consistency check: u reveals nothing
  of the sign of a), v = sqrt(u) = u^((p + 1) / 4) (p = 3 mod 4), b = (a / v + 1) / 2, a
  uniform bit; a linear function of a with public coefficients, so b's pair follows. An
  additive error on a^2 would make b a non-bit: it is an error on a checked product, caught
  at the verification.
- truncation [CS10, Protocol 3.1] with the mask built from those bits: r = sum_j 2^j b_j
  (l + kappa bits), r_hi = sum_{j >= f} 2^(j - f) b_j, c = open(x + 2^(l-1) + r),
  trunc(x) = (c >> f) - 2^(l-1-f) - r_hi: the result and its r-component are linear in the
  checked MShares (the pair (trunc(x), r*trunc(x)) is verified). c is masked by r
  (statistical distance 2^-kappa) and opened with the consistency check; an inconsistent
  share is reported at the next verification.

[DFKNT06] Damgard, Fitzi, Kiltz, Nielsen, Toft, "Unconditionally secure constant-rounds
multi-party computation for equality, comparison, bits and exponentiation", TCC 2006.
[CS10] O. Catrina, A. Saxena, "Secure computation with fixed-point numbers", FC 2010.
Cost: l + kappa = 104 checked products per truncated element over GF(2^127 - 1): correct
and verified, but about 100x a product; dealer-free malicious edaBits would make it cheap.
"""

from __future__ import annotations

import numpy as np

from protocols.errors import ParameterError
from protocols.malicious.chida18 import (
    MShare,
    _check,
    _field,
    _key,
    _open_checked,
    _rb,
    _reduce,
    _state,
    mul,
)
from protocols.session import Session, Share
from protocols.truncation import KAPPA, check_field_room, public_shift, value_bits


async def random(s: Session, shape: tuple[int, ...]) -> MShare:
    """A uniformly random MShare: [a] a random sharing, [r*a] one DN07 product (checked
    like an input).   Rounds: 2.   Preprocessing: randoms(S), double_randoms(S)."""
    shape = tuple(int(d) for d in shape)
    key = await _key(s)
    F = s.domain
    a = await s.prep.randoms(shape)
    rt, r2t = await s.prep.double_randoms(shape)
    ra, tag = await _reduce(s, F.mul(_rb(key, shape), np.ascontiguousarray(a)), rt, r2t)
    _state(s).pending.append((tag, a.reshape(-1), ra.reshape(-1)))
    return MShare(Share(a, s), Share(ra, s), key)


async def random_bits(s: Session, shape: tuple[int, ...]) -> MShare:
    """Uniform random bits as an MShare, by the square-root trick (module docstring).

    Shapes: returns S.   Rounds: 5 (random 2, square 2, opening 1).
    Bytes: for M = N + 8 + N // 1000 candidates (zeros, probability 1/p, are dropped):
    those of `random` and `mul` on M, plus (n - 1)*M*e for the opening.
    Raises: ParameterError unless p = 3 (mod 4)."""
    F = _field(s)
    p = F.modulus
    if p % 4 != 3:
        raise ParameterError(f"random bits need p = 3 (mod 4), got p mod 4 = {p % 4}")
    shape = tuple(int(d) for d in shape)
    N = int(np.prod(shape, dtype=np.int64))
    M = N + 8 + N // 1000
    a = await random(s, (M,))
    a2 = await mul(s, a, a)
    u, ok = await _open_checked(s, a2.x.data, "mbits")
    if not ok:
        ctx = _state(s)
        ctx.failed = ctx.failed or "open"
    nz = np.flatnonzero(F.to_int(u) != 0)[:N]
    if nz.size < N:  # pragma: no cover (probability about (M / p)^8)
        raise ParameterError("too many zero squares: the field is too small for random bits")
    a, u = a[nz], u[nz]
    e = (p + 1) // 4
    if e & (e - 1) == 0 and F.dtype != object:  # Mersenne: sqrt by squarings in place
        v = u.copy()
        for _ in range(e.bit_length() - 1):
            F.mul(v, v, out=v)
    else:
        v = F.pow(u, e)
    half = F.from_int(np.full(N, (p + 1) // 2, dtype=object))
    return ((a * F.inv(v) + 1) * half).reshape(*shape)


def _weighted(bits: MShare, lo: int, hi: int) -> MShare:
    """sum_{lo <= j < hi} 2^(j - lo) bits[j] (Horner: additions only)."""
    acc = bits[hi - 1]
    for j in range(hi - 2, lo - 1, -1):
        acc = acc + acc + bits[j]
    return acc


async def trunc(s: Session, x: MShare, f: int, *, kappa: int = KAPPA) -> MShare:
    """Divide by 2^f with probabilistic rounding [CS10, Protocol 3.1], checked.

        b: l + kappa random bits;  r = sum 2^j b_j;  r_hi = sum_{j >= f} 2^(j-f) b_j
        c = open(x + 2^(l-1) + r);   z = (c >> f) - 2^(l-1-f) - r_hi

    Result: floor(x / 2^f) + u, u in {0, 1}, P(u = 1) = (x mod 2^f) / 2^f, for
    |x| < 2^(l-1), l = truncation.value_bits(domain) (64 on GF(2^127 - 1)).
    Shapes: x: S; returns S.   Rounds: 6 (the bits 5, the opening 1).
    Bytes: `random_bits` of (l + kappa, *S), plus (n - 1)*N*e for c.
    Security: malicious with abort; c is statistically hidden (2^-kappa).
    Raises: ParameterError (field too small, f out of range)."""
    _check(s, x)
    D = s.domain
    ell = value_bits(D, kappa)
    check_field_room(D, ell, kappa, "truncation")
    if not 0 < f < ell - 1:
        raise ParameterError(f"trunc: need 0 < f < {ell - 1} on {D}, got {f}")
    nb = ell + kappa
    b = await random_bits(s, (nb, *x.shape))
    r, r_hi = _weighted(b, 0, nb), _weighted(b, f, nb)
    if r.key is not x.key:  # the bits were made under the current key: bring x to it
        from protocols.malicious.chida18 import refresh

        x = await refresh(s, x)
    masked = x + (1 << (ell - 1)) + r
    c, ok = await _open_checked(s, masked.x.data.reshape(-1), "mtrunc")
    if not ok:
        ctx = _state(s)
        ctx.failed = ctx.failed or "open"
    pub = public_shift(D, c.reshape(x.shape), f)
    D.sub(pub, D.from_int(np.full(x.shape, 1 << (ell - 1 - f), dtype=object)), out=pub)
    return (-r_hi) + pub


async def fixed_mul(s: Session, x: MShare, y: MShare, f: int) -> MShare:
    """Fixed-point product trunc(x * y, f): `mul` then `trunc` (Rounds: 2 + 6)."""
    return await trunc(s, await mul(s, x, y), f)
