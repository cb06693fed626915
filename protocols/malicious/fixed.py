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

- preprocessing (`prepare_trunc`): the masks of `count` future truncations are made in one
  batch ahead of time, the batch is verified at once (so an opened c is only ever masked by
  bits that passed the check), and each mask's high part r_hi is MACed under the *next*
  epoch's key, drawn before that verification and kept secret by it. Online, `trunc` then
  costs one opening (and `fixed_mul` a product and that opening); see `prepare_trunc`.

[DFKNT06] Damgard, Fitzi, Kiltz, Nielsen, Toft, "Unconditionally secure constant-rounds
multi-party computation for equality, comparison, bits and exponentiation", TCC 2006.
[CS10] O. Catrina, A. Saxena, "Secure computation with fixed-point numbers", FC 2010.
Cost: l + kappa = 104 checked random bits (3 products each) per truncated element over
GF(2^127 - 1), made by `prepare_trunc` offline (or inline by `trunc` if none is prepared).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocols.errors import ParameterError
from protocols.malicious.chida18 import (
    MShare,
    _check,
    _field,
    _Key,
    _key,
    _open_checked,
    _rb,
    _record,
    _reduce,
    _state,
    compress_pending,
    mul,
    refresh,
    verify,
    verify_inputs,
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
    _record(s, key, tag, a.reshape(-1), ra.reshape(-1), value=False)
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
    if F.dtype.names == ("lo", "hi"):  # GF(2^127 - 1) limbs, canonical: zero iff both are
        nz = np.flatnonzero((u["lo"] != 0) | (u["hi"] != 0))[:N]
    else:
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


# ------------------------------------------------------------------ preprocessing ---
_POOL = "malicious-fixed"


@dataclass(eq=False)
class _Masks:
    """Prepared truncation masks (N,): this party's share of r (no MAC: r only masks c, whose
    opening is consistency-checked) and r_hi = r >> f as an MShare."""

    r: np.ndarray
    hi: MShare


def _pool(s: Session) -> dict[tuple[int, int], list[_Masks]]:
    return s._state.ext.setdefault(_POOL, {})


def prepared(s: Session, f: int, *, kappa: int = KAPPA) -> int:
    """How many prepared truncation masks for (f, kappa) this session holds."""
    return sum(m.r.size for m in _pool(s).get((int(f), int(kappa)), []))


def _mask_params(s: Session, f: int, kappa: int) -> int:
    D = s.domain
    ell = value_bits(D, kappa)
    check_field_room(D, ell, kappa, "truncation")
    if not 0 < f < ell - 1:
        raise ParameterError(f"trunc: need 0 < f < {ell - 1} on {D}, got {f}")
    return ell


async def verify_into_next_key(s: Session, vals: np.ndarray) -> tuple[np.ndarray, _Key]:
    """MAC values under the next epoch's key, then verify: the core of the preprocessing.

        r2 = a random sharing (not opened by anything);  [r2 * v] = one DN07 product
        verify (every pending pair);  the current key becomes r2;  (v, r2*v) pending

    `vals`: this party's shares of values fixed before the call (any shape). Returns the
    shares of r2 * vals and r2's key. The pairs (v, r2*v) are checked at the verification
    that retires r2, their errors fixed before r2 is opened (as for any product); the
    verification here neither uses nor opens r2 [CGHIKLN18, sec. 3].
    Rounds: 2 + 3 (verify).   Preprocessing: randoms(()), double_randoms(vals.shape)."""
    F = s.domain
    ctx = _state(s)
    r2 = np.asarray(await s.prep.randoms(()))
    rt, r2t = await s.prep.double_randoms(vals.shape)
    rv, tag = await _reduce(s, F.mul(_rb(_Key(r2, -1), vals.shape), np.ascontiguousarray(vals)), rt, r2t)
    await verify(s)
    async with ctx.lock:
        if ctx.key is not None:  # pragma: no cover (verify leaves no key; nothing ran since)
            raise ParameterError("a key was drawn during the verification")
        key = ctx.key = _Key(r2, ctx.epoch)
        _record(s, key, tag, vals.reshape(-1), rv.reshape(-1), value=False)
    return rv, key


async def prepare_trunc(s: Session, count: int, f: int, *, kappa: int = KAPPA) -> None:
    """Make the masks of `count` future truncations by 2^f (the offline phase of `trunc`).

        b: (l + kappa, count) checked random bits (`random_bits`, one batch);
        r = sum_j 2^j b_j;  r_hi = sum_{j >= f} 2^(j - f) b_j        (local)
        r2: the next epoch's key, drawn now;  [r2 * r_hi] = one DN07 product
        verify (every pending pair, the bits' included);  the key becomes r2

    Soundness. The bits pass a full verification [CGHIKLN18, sec. 3] before any value masked
    by them is opened: each b_j = (a/sqrt(a^2) + 1)/2 is an exact bit whenever the checked
    square a^2 and its opening are correct, and any other deviation is an additive error on a
    checked product (caught, false accept <= 2/p) or an inconsistent opening (caught: n = 2t
    + 1 shares of degree t). So r is exactly a uniform (l + kappa)-bit integer, r_hi exactly
    r >> f: the masked c = x + 2^(l-1) + r never wraps mod p and is within statistical
    distance 2^-kappa of independent of x [CS10, sec. 3]. The pair (r_hi, r2*r_hi) is a
    product under the next epoch's key r2, which the verification neither uses nor opens; it
    is checked at the verification that retires r2 (its error fixed before r2 is opened),
    like any product. This verification also retires the current key: MShares made before
    `prepare_trunc` must be `refresh`ed (mul / matmul do it for their left operand).

    Shapes: the masks are used in order by `trunc` with this (f, kappa), across shapes.
    Then the pending pair (r_hi, r2*r_hi) is folded into one (`chida18.compress_pending`).
    Rounds: `random_bits` (5) + 2 (r2 * r_hi) + 3 (verify) + 1 (compress) = 11, independent
    of count.
    Bytes: `random_bits` of (l + kappa)*count, a `_reduce` of count, the verification's.
    Preprocessing: that of `random_bits` on (l + kappa)*count, randoms(()) and
    double_randoms((count,)) for r2*r_hi.
    Raises: ParameterError (f out of range, field too small), CheatingDetectedError."""
    f, kappa, count = int(f), int(kappa), int(count)
    if count <= 0:
        raise ParameterError(f"prepare_trunc: count must be positive, got {count}")
    nb = _mask_params(s, f, kappa) + kappa
    b = await random_bits(s, (nb, count))
    r, hi = _weighted(b, 0, nb), _weighted(b, f, nb)
    rhi2, key = await verify_into_next_key(s, hi.x.data)
    await compress_pending(s)  # the MACs' share of the next verification, done now
    _pool(s).setdefault((f, kappa), []).append(_Masks(r.x.data.reshape(-1), MShare(hi.x, Share(rhi2, s), key)))


async def _take(s: Session, N: int, f: int, kappa: int) -> tuple[np.ndarray, MShare] | None:
    """N prepared masks (r shares, r_hi under the current key), or None if fewer remain."""
    chunks = _pool(s).get((f, kappa), [])
    if sum(m.r.size for m in chunks) < N:
        return None
    await verify_inputs(s)  # c is opened only for range-checked inputs
    rs, his, need = [], [], N
    while need:
        m = chunks[0]
        k = min(need, m.r.size)
        rs.append(m.r[:k])
        his.append(await refresh(s, m.hi[:k]))
        if k == m.r.size:
            chunks.pop(0)
        else:
            chunks[0] = _Masks(m.r[k:], m.hi[k:])
        need -= k
    F = s.domain
    key = his[0].key
    hx = Share(np.concatenate([h.x.data for h in his]) if len(his) > 1 else his[0].x.data, s)
    hr = Share(np.concatenate([h.rx.data for h in his]) if len(his) > 1 else his[0].rx.data, s)
    r = np.concatenate(rs) if len(rs) > 1 else rs[0]
    assert r.dtype == F.dtype
    return r, MShare(hx, hr, key)


async def trunc(s: Session, x: MShare, f: int, *, kappa: int = KAPPA) -> MShare:
    """Divide by 2^f with probabilistic rounding [CS10, Protocol 3.1], checked.

        r, r_hi: prepared masks (`prepare_trunc`), else made here from l + kappa random bits
        c = open(x + 2^(l-1) + r);   z = (c >> f) - 2^(l-1-f) - r_hi

    Result: floor(x / 2^f) + u, u in {0, 1}, P(u = 1) = (x mod 2^f) / 2^f, for
    |x| < 2^(l-1), l = truncation.value_bits(domain) (64 on GF(2^127 - 1)).
    Shapes: x: S; returns S.
    Rounds: 1 with prepared masks under the current key (+5 for `chida18.check_values` if a
    product ran since the last check, review5; +2 if a verification ran since
    `prepare_trunc`: r_hi is refreshed; +2 to refresh an x of an older epoch); 14 without
    (`prepare_trunc` for N masks 11, refreshing x 2, the opening 1).
    Bytes: (n - 1)*N*e for c; without prepared masks also `prepare_trunc`'s.
    Security: malicious with abort; c is statistically hidden (2^-kappa) and opened only
    masked by verified bits (bits checked only after c was opened would let a cheater who
    breaks the top bits -- a wrong square gives a non-bit of a form it knows up to the
    sign -- strip them from the mask and learn about x before the abort).
    Raises: ParameterError (field too small, f out of range)."""
    _check(s, x)
    D = s.domain
    ell = _mask_params(s, f, kappa)
    got = await _take(s, x.size, int(f), int(kappa))
    if got is not None:
        rflat, r_hi = got
        r_hi = r_hi.reshape(*x.shape)
        mask = rflat.reshape(x.shape)
        x = await refresh(s, x)
    else:  # none prepared: prepare exactly these (so c is masked by verified bits only)
        await prepare_trunc(s, x.size, f, kappa=kappa)
        got = await _take(s, x.size, int(f), int(kappa))
        assert got is not None
        mask, r_hi = got[0].reshape(x.shape), got[1].reshape(*x.shape)
        x = await refresh(s, x)  # the preparation's verification retired x's key
    masked = x.x + (1 << (ell - 1)) + Share(mask, s)
    c, ok = await _open_checked(s, masked.data.reshape(-1), "mtrunc")
    if not ok:
        ctx = _state(s)
        ctx.failed = ctx.failed or "open"
    pub = public_shift(D, c.reshape(x.shape), f)
    D.sub(pub, D.from_int(np.full(x.shape, 1 << (ell - 1 - f), dtype=object)), out=pub)
    return (-r_hi) + pub


async def fixed_mul(s: Session, x: MShare, y: MShare, f: int) -> MShare:
    """Fixed-point product trunc(x * y, f): `mul` then `trunc` (Rounds: 2 + 1 with prepared
    masks, 2 + 14 without)."""
    return await trunc(s, await mul(s, x, y), f)
