"""Truncation of shared fixed-point values: x -> x / 2^f, for Z_2^64 and GF(p).

A fixed-point product of two values with f fractional bits carries 2f; `trunc` removes f of
them. All protocols here round *stochastically*: the result is floor(x / 2^f) or
floor(x / 2^f) + 1, the latter with probability (x mod 2^f) / 2^f, so the rounding is
unbiased and the error is below one unit in the last place (ulp = 2^-f after decoding).
Nothing here fails with a large error when its stated input range holds:

* Z_2^64, any n (default, `method="msb"`): one opening of x + 2^62 + r with r uniform in
  Z_2^64 and the top-bit correction of Escudero, Ghosh, Keller, Rachuri and Scholl, "Improved
  Primitives for MPC over Mixed Arithmetic-Binary Circuits", CRYPTO 2020, sec. 5.1 (also
  Dalskov, Escudero and Keller, "Secure Evaluation of Quantized Neural Networks", PETS 2020):
  if y = x + 2^62 has top bit 0 and c = y + r mod 2^64, then the borrow of the low 63 bits is
  exactly msb(c) XOR msb(r), which is linear in a shared bit. Exact (never a wrap error) for
  |x| < 2^62; perfectly hiding (c is uniform).
* Z_2^64, n = 2 (`method="local"`): the local truncation of Mohassel and Zhang, "SecureML",
  IEEE S&P 2017, sec. 4.1, Theorem 1: no communication, but for |x| < 2^l the result is off by
  about 2^(64-f) with probability up to 2^(l+1-64). For a 2^-40 failure chance that leaves
  l <= 23, i.e. products |x*y| < 2^(23-2f) (< 1 with f = 16), useless for training: it is an
  option for experiments only, never the default.
* GF(p), any scheme (`method="cs"`): probabilistic truncation TruncPr of Catrina and Saxena,
  "Secure Computation With Fixed-Point Numbers", FC 2010, sec. 3.1 / Protocol 3.1: open
  c = x + 2^(l-1) + r with r uniform in [0, 2^(l+kappa)) and subtract r >> f. Needs
  p > 2^(l+kappa+1); statistically hiding with distance below 2^-kappa.

Value bounds (`value_bits`): on Z_2^64 truncation accepts |x| < 2^62 (l = 63); on a field, l
defaults to min(64, bitlen(p) - kappa - 2), so GF(2^127 - 1) gives l = 64 (|x| < 2^63) and
GF(2^61 - 1) only l = 19 -- too small for fixed-point products with f = 16, and `trunc`
raises ParameterError there: use GF(2^127 - 1) (`protocols.arith.field.Mersenne127`) for
fixed point over Shamir.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocols.arith.domain import Domain
from protocols.arith.fixedpoint import DEFAULT_F
from protocols.core import open
from protocols.errors import ParameterError, ShapeMismatch
from protocols.session import Session, Share

#: what trunc_mask hands to trunc_finish: ("msb", r_hi, r_msb) or ("cs", r_hi, l)
TruncItem = tuple[Any, ...]

#: statistical security parameter for masks over fields (statistical distance <= 2^-KAPPA)
KAPPA = 40
#: Z_2^64 truncation input bound: |x| < 2^RING_TRUNC_BITS
RING_TRUNC_BITS = 62

_U64 = np.uint64
_LOW63 = np.uint64((1 << 63) - 1)


def is_ring64(D: Domain) -> bool:
    return not D.is_field and D.modulus == 1 << 64


def value_bits(D: Domain, kappa: int = KAPPA) -> int:
    """l: the protocols on D accept signed values |x| < 2^(l-1). Z_2^64: 64 for comparisons
    (every int64), truncation needs |x| < 2^62. Field: min(64, bitlen(p) - kappa - 2)."""
    if is_ring64(D):
        return 64
    if not D.is_field:
        raise ParameterError(f"no truncation/comparison protocol for {D}")
    return min(64, (D.modulus - 1).bit_length() - kappa - 2)


def check_field_room(D: Domain, ell: int, kappa: int, what: str) -> None:
    if D.modulus <= 1 << (ell + kappa + 1):
        raise ParameterError(
            f"{what} on {D} with l={ell}, kappa={kappa} needs p > 2^{ell + kappa + 1}; "
            "use GF(2^127 - 1) (Mersenne127) for fixed point over Shamir"
        )


def check_product_room(D: Domain, f: int, kappa: int = KAPPA) -> None:
    """ParameterError unless a fixed-point product (2f fractional bits) of values of magnitude
    at least 2 fits the truncation range of D: l - 1 - 2f >= 2 (62 - 2f >= 2 on Z_2^64)."""
    room = (RING_TRUNC_BITS if is_ring64(D) else value_bits(D, kappa) - 1) - 2 * f
    if room < 2:
        raise ParameterError(
            f"fixed point with f={f} on {D} leaves products below 2^{room}: too small; "
            "use GF(2^127 - 1) (Mersenne127) for fixed point over Shamir, or a smaller f"
        )


# -- public (opened) values: bits and shifts of canonical elements, domain-generic ----------
def _limbs(D: Domain, c: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(low 64 bits, bits 64..127 or None) of canonical elements below 2^128."""
    if D.dtype.names == ("lo", "hi"):
        return c["lo"].copy(), c["hi"].copy()  # contiguous; keeps 0-d arrays 0-d
    if D.dtype == np.dtype(np.uint64):
        return c, None
    ints = D.to_int(c)
    lo = np.array([int(v) & 0xFFFFFFFFFFFFFFFF for v in ints.reshape(-1)], dtype=_U64)
    hi = np.array([int(v) >> 64 for v in ints.reshape(-1)], dtype=_U64)
    return lo.reshape(c.shape), hi.reshape(c.shape)


def public_low_bits(D: Domain, c: np.ndarray, m: int) -> np.ndarray:
    """c mod 2^m as uint64, for opened canonical elements c and 1 <= m <= 64."""
    lo, _ = _limbs(D, c)
    return lo & _U64((1 << m) - 1) if m < 64 else lo.copy()


def public_shift(D: Domain, c: np.ndarray, f: int) -> np.ndarray:
    """floor(c / 2^f) as domain elements, for opened canonical elements c < 2^128, 0 < f < 64."""
    if D.dtype.names == ("lo", "hi"):
        # straight on the interleaved (lo, hi) words: no limb copies, no structured assignment
        w = np.ascontiguousarray(c).reshape(-1).view(_U64).reshape(-1, 2)
        out = np.empty(c.shape, dtype=D.dtype)
        ow = out.reshape(-1).view(_U64).reshape(-1, 2)
        np.right_shift(w[:, 0], _U64(f), out=ow[:, 0])
        np.bitwise_or(ow[:, 0], np.left_shift(w[:, 1], _U64(64 - f)), out=ow[:, 0])
        np.right_shift(w[:, 1], _U64(f), out=ow[:, 1])
        return out
    lo, hi = _limbs(D, c)
    if hi is None:
        return D.from_int(lo >> _U64(f))
    slo = (lo >> _U64(f)) | (hi << _U64(64 - f))
    shi = hi >> _U64(f)
    if D.dtype.names == ("lo", "hi"):
        out = np.empty(lo.shape, dtype=D.dtype)
        out["lo"], out["hi"] = slo, shi
        return out
    return D.from_int(slo.astype(object) + (shi.astype(object) << 64))


# -- truncation ----------------------------------------------------------------------------
async def trunc(
    s: Session, x: Share, f: int = DEFAULT_F, *, method: str = "auto", kappa: int = KAPPA
) -> Share:
    """Divide shared integers by 2^f with unbiased stochastic rounding.

        Z_2^64 ("msb", default):  y = x + 2^62,  c = open(y + r),  c' = c mod 2^63,
            z = (c' >> f) - (r' >> f) + 2^(63-f) * (msb(c) XOR msb(r)) - 2^(62-f)
            with r' = r mod 2^63 [EGKRS20, sec. 5.1]
        Z_2^64, n = 2 ("local"):  z_0 = x_0 >> f,  z_1 = -((-x_1) >> f)  [SecureML, sec. 4.1]
        GF(p) ("cs"):  c = open(x + 2^(l-1) + r),  z = (c >> f) - (r >> f) - 2^(l-1-f)
            with r uniform in [0, 2^(l+kappa))  [CS10, Protocol 3.1]

    Result: z = floor(x / 2^f) + u with u in {0, 1}, P(u = 1) = (x mod 2^f) / 2^f ("msb", "cs");
    "local" is off by at most 1 as well, except with the failure probability below.
    Ranges: "msb": |x| < 2^62, exact for every such x (failure probability 0).  "cs":
    |x| < 2^(l-1), l = value_bits(domain) (2^63 on GF(2^127-1)), failure probability 0.
    "local": |x| < 2^L fails (error ~2^(64-f)) with probability <= 2^(L+1-64).
    Shapes: x: S; returns S.   Rounds: 1 ("msb", "cs"), 0 ("local").
    Bytes: (n-1)*N*e sent per party ("msb", "cs"), 0 ("local").
    Preprocessing: "msb": trunc_triples(S, f); "cs": trunc_pairs(S, f, l + kappa).
    Security: semi-honest. "msb", "local": perfectly hiding; "cs": statistical distance
    <= 2^-kappa.   Raises: ParameterError (unknown method, field too small, "local" with n != 2 or
    Shamir), PreprocessingExhausted, errors of `open`.
    """
    D = s.domain
    if not isinstance(x, Share):
        raise TypeError(f"trunc expects a Share, got {type(x).__name__}")
    if method == "auto":
        method = "msb" if is_ring64(D) else "cs"
    if method == "msb":
        if not is_ring64(D):
            raise ParameterError(f"trunc method 'msb' needs Z_2^64, not {D}")
        masked, item = await trunc_mask(s, x, f)
        (c,) = await open(s, masked)
        return trunc_finish(s, c, item, f)
    if method == "local":
        if not is_ring64(D) or s.n != 2 or s.scheme.kind != "additive":
            raise ParameterError("trunc method 'local' is for 2-party additive sharing over Z_2^64")
        if not 0 < f < 64:
            raise ParameterError(f"trunc: need 0 < f < 64, got {f}")
        if s.pid == 0:
            return Share(x.data >> _U64(f), s)
        return Share(-((-x.data) >> _U64(f)), s)
    if method == "cs":
        if not D.is_field:
            raise ParameterError(f"trunc method 'cs' needs a prime field, not {D}")
        masked, item = await trunc_mask(s, x, f, kappa=kappa)
        (c,) = await open(s, masked)
        return trunc_finish(s, c, item, f)
    raise ParameterError(f"trunc: unknown method {method!r} (auto, msb, local, cs)")


async def trunc_mask(s: Session, x: Share, f: int, *, kappa: int = KAPPA) -> tuple[Share, TruncItem]:
    """The first half of `trunc` (method "msb" on Z_2^64, "cs" on a field), split so that a
    caller can open the masked value in a batch with other openings (one message per peer)
    and fetch the item before starting concurrent branches: returns (the masked value to
    open, the item). `trunc_finish(s, opened, item, f)` completes it (local).
    Preprocessing, Raises: as `trunc` (no communication here)."""
    D = s.domain
    if is_ring64(D):
        if not 0 < f < RING_TRUNC_BITS:
            raise ParameterError(f"trunc: need 0 < f < {RING_TRUNC_BITS}, got {f}")
        r, r_hi, r_msb = await s.prep.trunc_triples(x.shape, f)
        return x + (1 << RING_TRUNC_BITS) + Share(r, s), ("msb", r_hi, r_msb)
    if not D.is_field:
        raise ParameterError(f"no truncation protocol for {D}")
    ell = value_bits(D, kappa)
    check_field_room(D, ell, kappa, "truncation")
    if not 0 < f < ell - 1:
        raise ParameterError(f"trunc: need 0 < f < {ell - 1} on {D}, got {f}")
    r, r_hi = await s.prep.trunc_pairs(x.shape, f, ell + kappa)
    return x + (1 << (ell - 1)) + Share(r, s), ("cs", r_hi, ell)


def trunc_public_parts(c: np.ndarray, f: int) -> tuple[np.ndarray, np.ndarray]:
    """For the opened c = x + 2^62 + r: (P, Q) with trunc(x) = P + Q * r_msb - r_hi, both
    public (pure): borrow = msb(c) XOR msb(r) = msb(c) + (1 - 2 msb(c)) msb(r)."""
    c_msb = c >> _U64(63)
    # ufunc calls, not operators: on 0-d data numpy scalar operators warn about the wrap
    q = np.subtract(_U64(1), c_msb << _U64(1)) << _U64(63 - f)  # (1 - 2 msb(c)) 2^(63-f)
    p = np.subtract((c & _LOW63) >> _U64(f), _U64(1 << (RING_TRUNC_BITS - f)))
    return np.add(p, c_msb << _U64(63 - f)), q


def trunc_finish(s: Session, c: np.ndarray, item: TruncItem, f: int) -> Share:
    """trunc(x) from the opened masked value of `trunc_mask` and its item (local)."""
    if item[0] == "cs":
        _, r_hi, ell = item
        D = s.domain
        # the public (c >> f) - 2^(l-1-f), added by the parties that add public terms
        # (every party for Shamir, party 0 for additive), then one subtraction of r >> f
        if s.scheme.adds_public(s.pid):
            pub = public_shift(D, c, f)
            D.sub(pub, D.from_int(1 << (ell - 1 - f)), out=pub)
        else:
            pub = D.zeros(r_hi.shape)
        return Share(D.sub(pub, r_hi), s)
    _, r_hi, r_msb = item
    p, q = trunc_public_parts(c, f)
    return Share(np.subtract(np.multiply(r_msb, q), r_hi), s) + p


async def sub_trunc_matmul(s: Session, x: Share, v: Share, u: Share, f: int) -> tuple[Share, Share]:
    """(y, x @ y) for y = v - trunc(u, f): the truncation and the product in ONE round.

        c = open(u + 2^62 + r),  D = open(x - A),  E = open(v - B)   (one batch)
        trunc(u) = P + Q * r_msb - r_hi  with P, Q public from c (`trunc_public_parts`)
        y = v - P - Q * r_msb + r_hi
        x @ y = C + D @ B + A @ E + D @ E  -  x @ P  +  D @ (r_hi - Q * r_msb)
                + [A @ r_hi]  -  [A * r_msb] @ Q

    The dealer supplies the matrix triple (A, B, C = A @ B) together with the truncation
    mask (r, r_hi, r_msb) of `trunc` "msb" and the two products of A with the mask's pieces
    (A @ r_hi and A * r_msb, row-broadcast), so y never needs its own opening before the
    product: the idea of correlating a multiplication triple with the mask of the value it
    multiplies, as in the "truncation pairs for matrix multiplication" of Mohassel and
    Rindal, "ABY3", CCS 2018, sec. 5.1, applied to the exact truncation of [EGKRS20, 5.1].
    Falls back to trunc then beaver.matmul (2 rounds) when the source does not supply
    `matrix_trunc_triples` (`s.prep.supports`: the dealer-free sources).

    Shapes: x: (k, d); v, u: (d,); returns ((d,), (k,)).   Range: |u| < 2^62 (as `trunc`);
    y exact as `trunc` (floor or floor + 1, unbiased).
    Rounds: 1 (2 in the fallback).   Bytes: (n-1)*(k*d + 2d)*8 sent per party (the fallback
    sends the same words in two rounds).   Messages: n-1 (one packed batch).
    Preprocessing: matrix_trunc_triples((k, d), (d,), f), else trunc_triples + a matrix
    triple.   Security: semi-honest; D, E, c are uniformly masked (perfectly hiding).
    Raises: ParameterError (not Z_2^64 additive-compatible), ShapeMismatch,
    PreprocessingExhausted, errors of `open`.
    """
    from protocols import beaver

    check_same(s, x, v, u)
    if x.ndim != 2 or v.shape != (x.shape[1],) or u.shape != v.shape:
        raise ShapeMismatch(f"sub_trunc_matmul: shapes {x.shape}, {v.shape}, {u.shape}")
    if s.domain.is_field:
        return await _sub_trunc_matmul_field(s, x, v, u, f)
    if not is_ring64(s.domain):
        raise ParameterError(f"sub_trunc_matmul needs Z_2^64 or a prime field, not {s.domain}")
    if not 0 < f < RING_TRUNC_BITS:
        raise ParameterError(f"trunc: need 0 < f < {RING_TRUNC_BITS}, got {f}")
    if not s.prep.supports("matrix_trunc_triples"):
        y = v - await trunc(s, u, f)
        return y, await beaver.matmul(s, x, y)
    item = await s.prep.matrix_trunc_triples(x.shape, v.shape, f)
    A, B, C, r, r_hi, r_msb, AR, AM = item
    D = s.domain
    dd, ee, c = await open(
        s, Share(D.sub(x.data, A), s), Share(D.sub(v.data, B), s), u + (1 << RING_TRUNC_BITS) + Share(r, s)
    )
    p, q = trunc_public_parts(c, f)
    qm = np.multiply(r_msb, q)
    # y = v - P - Q r_msb + r_hi
    y = Share(np.subtract(np.add(v.data, r_hi), qm), s) - p
    left = np.add(A, dd) if s.scheme.adds_public(s.pid) else A
    z = np.matmul(dd, np.subtract(np.add(B, r_hi), qm))
    z += C
    z += np.matmul(left, ee)
    z -= np.matmul(x.data, p)
    z += AR
    z -= np.matmul(AM, q)
    return y, Share(z, s)


async def _sub_trunc_matmul_field(s: Session, x: Share, v: Share, u: Share, f: int) -> tuple[Share, Share]:
    """GF(p) `sub_trunc_matmul` with the probabilistic truncation "cs" [CS10, Protocol 3.1]:

        c = open(u + 2^(l-1) + r),  D = open(x - A),  E = open(v - B)   (one batch)
        trunc(u) = P - r_hi,  P = (c >> f) - 2^(l-1-f) public
        y = v - P + r_hi
        x @ y = C + D @ (B + r_hi) + A @ E + D @ E - x @ P + [A @ r_hi]

    with the item (A, B, C = A @ B, r, r_hi, A @ r_hi) of `matrix_trunc_triples` over a
    field, (r, r_hi) distributed as `trunc_pairs(d, f, l + kappa)`. Falls back to trunc then
    beaver.matmul (2 rounds) when the source does not supply the kind (the trusted dealer).
    Range, rounding: as `trunc` "cs" (|u| < 2^(l-1)).  Rounds: 1 (2 in the fallback).
    Bytes: (n-1)*(k*d + 2d)*e sent per party.  Security: semi-honest; D, E uniform, c
    statistically hiding (2^-kappa, or as the source's masks state)."""
    from protocols import beaver

    D = s.domain
    ell = value_bits(D, KAPPA)
    check_field_room(D, ell, KAPPA, "truncation")
    if not 0 < f < ell - 1:
        raise ParameterError(f"trunc: need 0 < f < {ell - 1} on {D}, got {f}")
    if not s.prep.supports("matrix_trunc_triples"):
        y = v - await trunc(s, u, f)
        return y, await beaver.matmul(s, x, y)
    A, B, C, r, r_hi, AR = await s.prep.matrix_trunc_triples(x.shape, v.shape, f)
    dd, ee, c = await open(
        s, Share(D.sub(x.data, A), s), Share(D.sub(v.data, B), s), u + (1 << (ell - 1)) + Share(r, s)
    )
    P = public_shift(D, c, f)
    D.sub(P, D.from_int(1 << (ell - 1 - f)), out=P)
    pub = s.scheme.adds_public(s.pid)
    y = Share(D.add(v.data, r_hi), s) - P
    left = D.add(A, dd) if pub else A
    z = D.add(C, D.matmul(dd, D.add(B, r_hi)))
    D.add(z, D.matmul(left, ee), out=z)
    D.sub(z, D.matmul(x.data, P), out=z)
    D.add(z, AR, out=z)
    return y, Share(z, s)


def check_same(s: Session, *xs: Share) -> None:
    for x in xs:
        if not isinstance(x, Share):
            raise TypeError(f"expected a Share, got {type(x).__name__}")
        if x._s.pid != s.pid or x._s.domain != s.domain:
            raise ShapeMismatch("share does not belong to this session")
