"""The numpy limb kernels of GF(2^127 - 1) (protocols.arith.mersenne127): the path used
without numba or with SMPC_NO_JIT=1, and the reference the compiled kernels
(protocols.arith._m127_jit) are tested against. Elements are (lo, hi) uint64 pairs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from protocols.arith._fieldops import _S3, _add, _and, _ls, _mul, _or, _rs, _Scratch, _sub, _u
from protocols.arith.domain import Shape

_P127_HI = _u((1 << 63) - 1)
_M64 = _u((1 << 64) - 1)
_M63 = _P127_HI
_M26 = _u((1 << 26) - 1)
_M23 = _u((1 << 23) - 1)
_M14 = _u((1 << 14) - 1)
_S12, _S14, _S26, _S40, _S52, _S63 = (_u(s) for s in (12, 14, 26, 40, 52, 63))
_U64 = np.uint64

DT127 = np.dtype([("lo", "<u8"), ("hi", "<u8")])
_ADD_BLOCK = 1 << 16


def _limbs26(lo: np.ndarray, hi: np.ndarray, L: Sequence[np.ndarray], t: np.ndarray) -> None:
    """Split x = lo + hi*2^64 (< 2^127) into five limbs of 26,26,26,26,23 bits."""
    _and(lo, _M26, L[0])
    _rs(lo, _S26, L[1])
    _and(L[1], _M26, L[1])
    _rs(lo, _S52, L[2])
    _and(hi, _M14, t)
    _ls(t, _S12, t)
    _or(L[2], t, L[2])
    _rs(hi, _S14, L[3])
    _and(L[3], _M26, L[3])
    _rs(hi, _S40, L[4])


def _canon127(lo: np.ndarray, hi: np.ndarray, olo: np.ndarray, ohi: np.ndarray, t: np.ndarray, c: np.ndarray, m: np.ndarray) -> None:
    """(olo, ohi) = v mod p for v = lo + hi*2^64 < 2p (so hi < 2^64 - 1). t: uint64 scratch,
    c, m: bool scratch. v >= p iff v + 1 >= 2^127; then v - p = (v + 1) - 2^127."""
    _add(lo, _u(1), t)  # lo + 1
    np.equal(t, _u(0), out=c)  # carry out of lo + 1
    _add(hi, c, t)  # hi of v + 1
    np.greater(t, _M63, out=m)  # v + 1 >= 2^127
    _add(lo, m, olo)  # lo + 1 where v >= p
    np.copyto(ohi, hi)
    _and(t, _M63, out=ohi, where=m)


def _reduce_cols127(C: Sequence[np.ndarray], olo: np.ndarray, ohi: np.ndarray, t: np.ndarray, c: np.ndarray, m: np.ndarray) -> None:
    """Turn five columns C[k] (weights 2^(26k), each < 2^63.5, already folded with 2^130 = 8)
    into the canonical (olo, ohi). Destroys C."""
    for k in range(4):
        _rs(C[k], _S26, t)
        _add(C[k + 1], t, C[k + 1])
        _and(C[k], _M26, C[k])
    _rs(C[4], _u(23), t)  # bits >= 127: 2^127 = 1
    _and(C[4], _M23, C[4])
    _add(C[0], t, C[0])  # < 2^26 + 2^41
    for k in range(2):
        _rs(C[k], _S26, t)
        _add(C[k + 1], t, C[k + 1])
        _and(C[k], _M26, C[k])
    # C0, C1 < 2^26, C2 <= 2^26, C3 < 2^26, C4 < 2^23: value < 2^127 + 2^52 < 2p
    _ls(C[1], _S26, C[1])
    _or(C[0], C[1], C[0])
    _ls(C[2], _S52, t)
    _or(C[0], t, C[0])  # lo
    _rs(C[2], _S12, C[2])
    _ls(C[3], _S14, C[3])
    _add(C[2], C[3], C[2])
    _ls(C[4], _S40, C[4])
    _add(C[2], C[4], C[2])  # hi
    _canon127(C[0], C[2], olo, ohi, t, c, m)


def _add_product(X: Sequence[np.ndarray], Y: Sequence[np.ndarray], C: Sequence[np.ndarray], t: np.ndarray, first: bool) -> None:
    """Columns C[k] (+)= the five folded product columns of limbs X, Y (see _mul127_block);
    destroys Y (limbs 1..4 shifted by 3). Column k grows by less than 2^58."""
    for k in range(5):
        if first:
            _mul(X[0], Y[k], C[k])
        else:
            _mul(X[0], Y[k], t)
            _add(C[k], t, C[k])
        for i in range(1, k + 1):
            _mul(X[i], Y[k - i], t)
            _add(C[k], t, C[k])
    for j in range(1, 5):
        _ls(Y[j], _S3, Y[j])
    for s in range(5, 9):
        col = C[s - 5]
        for i in range(s - 4, 5):
            _mul(X[i], Y[s - i], t)
            _add(col, t, col)


def _mul127_block(
    xlo: np.ndarray, xhi: np.ndarray, ylo: np.ndarray, yhi: np.ndarray, olo: np.ndarray, ohi: np.ndarray,
    X: Sequence[np.ndarray], Y: Sequence[np.ndarray], C: Sequence[np.ndarray], t: np.ndarray, c: np.ndarray, m: np.ndarray,
) -> None:
    """Product of canonical elements given as lo/hi limb arrays; outputs may alias inputs.

    Limbs of 26 bits: x = sum x_i 2^(26i), i < 5. Products x_i*y_j < 2^52. Terms with
    i + j >= 5 have weight 2^130 * 2^(26(i+j-5)) = 8 * 2^(26(i+j-5)) (2^127 = 1), so they are
    computed with y_j << 3 straight into column i+j-5: column k holds at most
    (k+1)*2^52 + (4-k)*2^55 < 2^58.
    """
    _limbs26(xlo, xhi, X, t)
    _limbs26(ylo, yhi, Y, t)
    _add_product(X, Y, C, t, True)
    _reduce_cols127(C, olo, ohi, t, c, m)


def _canonical(lo: np.ndarray, hi: np.ndarray) -> bool:
    """All lo + hi*2^64 < p. One pass in the common case: hi < 2^63 - 1 leaves no doubt."""
    top = hi >= _M63
    if not top.any():
        return True
    return not (bool((hi > _M63).any()) or bool((top & (lo == _M64)).any()))


def _rotl127(lo: np.ndarray, hi: np.ndarray, k: int, olo: np.ndarray, ohi: np.ndarray, t: np.ndarray) -> None:
    """(olo, ohi) = x * 2^k mod p for 0 < k < 64: a left rotation of the 127 bits of x
    (canonical stays canonical: only p maps to p). t: uint64 scratch; outputs must not
    alias the inputs."""
    _rs(hi, _u(63 - k), out=t)
    _ls(lo, _u(k), out=olo)
    _or(olo, t, out=olo)
    _rs(lo, _u(64 - k), out=t)
    _ls(hi, _u(k), out=ohi)
    _or(ohi, t, out=ohi)
    _and(ohi, _M63, out=ohi)


def _sub_limbs(
    xl: np.ndarray, xh: np.ndarray, yl: np.ndarray, yh: np.ndarray, ol: np.ndarray, oh: np.ndarray, u: np.ndarray, v: np.ndarray, w: np.ndarray, c: np.ndarray,
    *, negate_y: bool = False,
) -> None:
    """(ol, oh) = x - y mod p for x canonical and y in [0, p] (y = p allowed: p - 0), given
    as lo/hi limb arrays (any strides; outputs may alias inputs). With negate_y, y is
    replaced by p - y first (so the result is x + y). u, v, w: uint64 scratch, c: bool."""
    if negate_y:
        np.invert(yl, out=u)
        _sub(_M63, yh, out=v)
        yl, yh = u, v
    _sub(xh, yh, out=w)
    np.less(xl, yl, out=c)  # borrow out of the low limb
    _sub(w, c, out=w)  # hi of d = x - y in [-p, p), two's complement
    _sub(xl, yl, out=u)  # lo of d (u may be yl: read above)
    _rs(w, _S63, out=v)  # 1 where d < 0: d + p = (d + 2^128) - 2^127 - 1
    np.less(u, v, out=c)  # borrow of lo - 1
    _sub(u, v, out=ol)
    _and(w, _M63, out=w)
    _sub(w, c, out=oh)


def _lincomb_terms(terms: list[tuple[int, bool, np.ndarray]], shape: Shape, scratch: _Scratch) -> np.ndarray:
    """sum of the terms (rotation k or 0, negate, flat (N, 2) uint64 view) into a new DT127
    array of `shape`, in blocks of _ADD_BLOCK limbs from the scratch pool (Mersenne127.lincomb)."""
    if not terms:
        return np.zeros(shape, dtype=DT127)
    terms.sort(key=lambda t: t[1])  # a positive term first: no negation of the start
    start_neg = terms[0][1]
    out = (np.zeros if start_neg else np.empty)(shape, dtype=DT127)
    ov = out.reshape(-1).view(_U64).reshape(-1, 2)
    total = ov.shape[0]
    bs = min(_ADD_BLOCK, max(total, 1))
    al, ah, tl, th, u, v, w = scratch.get(_U64, 7, bs)
    (cb,) = scratch.get(np.bool_, 1, bs)
    for i in range(0, total, bs):
        n = min(bs, total - i)
        ol, oh = ov[i : i + n, 0], ov[i : i + n, 1]
        # the running sum: a view of the first term (or out = 0), then contiguous scratch;
        # the last step writes into out
        xl, xh = (ol, oh) if start_neg else (None, None)
        for j, (k, neg, tv) in enumerate(terms):
            yl, yh = tv[i : i + n, 0], tv[i : i + n, 1]
            if k:
                rl, rh = (al[:n], ah[:n]) if xl is None else (tl[:n], th[:n])
                _rotl127(yl, yh, k, rl, rh, u[:n])
                yl, yh = rl, rh
            if xl is None:
                xl, xh = yl, yh
                continue
            assert xh is not None  # set together with xl
            last = j == len(terms) - 1
            zl, zh = (ol, oh) if last else (al[:n], ah[:n])
            _sub_limbs(xl, xh, yl, yh, zl, zh, u[:n], v[:n], w[:n], cb[:n], negate_y=not neg)
            xl, xh = zl, zh
        if len(terms) == 1 and not start_neg:
            assert xl is not None and xh is not None  # set from the only term
            np.copyto(ol, xl)
            np.copyto(oh, xh)
    return out
