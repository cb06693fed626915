"""Compiled (numba) kernels for GF(2^127 - 1) (see protocols.arith.mersenne127).

Importing this module imports numba but compiles nothing: every kernel is compiled on its
first call for the argument types it gets (`cache=True`: later processes load the machine
code from numba's on-disk cache instead of compiling again). Mersenne127 imports it lazily,
on its first hot operation, unless SMPC_NO_JIT=1.

Data layout: an array of n elements is a flat C-contiguous uint64 array of 2n words, element
i being lo = w[2i], hi = w[2i + 1] (value lo + 2^64 hi) -- the memory of the structured dtype
DT127 viewed as uint64. Inputs are canonical (< p = 2^127 - 1); every output is canonical.
A stride argument of 0 reads a single element for every i (a public constant against an
array), 2 reads element i. Each kernel reads all inputs of element i before writing output
element i, so an output may be the same buffer as an input (not a shifted view of it).

Arithmetic: numba has no 128-bit integers, so a 64 x 64 -> 128-bit product is formed from four
32 x 32 -> 64-bit products. A product x*y < 2^254 is split as L + 2^127 H with L, H < 2^127,
and 2^127 = 1 mod p gives x*y = L + H < 2^128 (the "partially reduced" value that sums are
accumulated from); a value v < 2^128 becomes canonical by one more fold (v mod 2^127 +
v >> 127 <= 2^127) and a final v - p when v + 1 >= 2^127. No data-dependent branches: the
helpers are inlined into the kernels at numba's level (inline="always"), which lets LLVM
vectorise the loops (AVX2: the 32 x 32-bit products become vpmuludq); a multiplication costs
about 4-5 ns per element instead of ~15 ns for the same code as scalar calls. Loop-invariant
choices (number of terms, rotation or multiplication) select whole loops, not per element.
"""

from __future__ import annotations

import ctypes
import os
import sys

import numpy as np
from numba import njit

_U = np.uint64
_M32 = _U(0xFFFFFFFF)
_M63 = _U((1 << 63) - 1)
_M64 = _U((1 << 64) - 1)
_ZERO = _U(0)
_ONE = _U(1)
_S1 = _U(1)
_S32 = _U(32)
_S63 = _U(63)
_S64 = _U(64)

# no parallel=True: the in-process parties share two cores; nogil lets threaded callers overlap
_kernel = njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
_inline = njit(inline="always", boundscheck=False, error_model="numpy")


# -- element helpers (inlined) ---------------------------------------------------------------
@_inline
def _mul64(a: np.uint64, b: np.uint64) -> tuple[np.uint64, np.uint64]:
    """(lo, hi) of the 128-bit product a*b from four 32-bit half products."""
    a0 = a & _M32
    a1 = a >> _S32
    b0 = b & _M32
    b1 = b >> _S32
    p00 = a0 * b0
    p01 = a0 * b1
    p10 = a1 * b0
    p11 = a1 * b1
    mid = (p00 >> _S32) + (p01 & _M32) + (p10 & _M32)  # < 3 * 2^32
    lo = (p00 & _M32) | (mid << _S32)
    hi = p11 + (p01 >> _S32) + (p10 >> _S32) + (mid >> _S32)
    return lo, hi


@_inline
def _mulred(
    xl: np.uint64, xh: np.uint64, yl: np.uint64, yh: np.uint64
) -> tuple[np.uint64, np.uint64]:
    """x*y mod p as (lo, hi) < 2^128, partially reduced, for x, y < 2^127 (xh, yh < 2^63)."""
    l00, h00 = _mul64(xl, yl)
    l01, h01 = _mul64(xl, yh)  # h01 < 2^63
    l10, h10 = _mul64(xh, yl)  # h10 < 2^63
    l11, h11 = _mul64(xh, yh)  # < 2^126: h11 < 2^62
    # x*y = l00 + r1 2^64 + r2 2^128 + r3 2^192
    r1 = h00 + l01
    c1 = _U(r1 < l01)
    r1 = r1 + l10
    c1 = c1 + _U(r1 < l10)
    r2 = h01 + h10 + l11
    c2 = _U(r2 < l11)
    r2 = r2 + c1
    c2 = c2 + _U(r2 < c1)
    r3 = h11 + c2
    # H = x*y >> 127 < 2^127 as (hl, hh); L = (l00, r1 mod 2^63); L + H < 2^128
    hl = (r1 >> _S63) | (r2 << _S1)
    hh = (r2 >> _S63) | (r3 << _S1)
    lo = l00 + hl
    hi = (r1 & _M63) + hh + _U(lo < hl)
    return lo, hi


@_inline
def _canon2p(lo: np.uint64, hi: np.uint64) -> tuple[np.uint64, np.uint64]:
    """v mod p for v = lo + 2^64 hi < 2p: v >= p iff v + 1 >= 2^127, and then v - p is
    v + 1 - 2^127."""
    lo1 = lo + _ONE
    hi1 = hi + _U(lo1 == _ZERO)
    m = hi1 >> _S63
    mask = _ZERO - m
    return lo + m, ((hi1 & _M63) & mask) | (hi & ~mask)


@_inline
def _canon3(lo: np.uint64, hi: np.uint64, top: np.uint64) -> tuple[np.uint64, np.uint64]:
    """v mod p for v = lo + 2^64 hi + 2^128 top (top < 2^62): 2^127 = 1 and 2^128 = 2 fold
    it below 2^127 + 2^64 < 2p, then `_canon2p`."""
    k = (hi >> _S63) + (top << _S1)
    hi = hi & _M63
    lo = lo + k
    hi = hi + _U(lo < k)
    return _canon2p(lo, hi)


@_inline
def _acc(
    lo: np.uint64, hi: np.uint64, top: np.uint64, vl: np.uint64, vh: np.uint64
) -> tuple[np.uint64, np.uint64, np.uint64]:
    """(lo, hi, top) + (vl, vh), a 192-bit sum."""
    lo = lo + vl
    c = _U(lo < vl)
    hi = hi + vh
    top = top + _U(hi < vh)
    hi = hi + c
    top = top + _U(hi < c)
    return lo, hi, top


@_inline
def _rot(
    lo: np.uint64, hi: np.uint64, s: np.uint64, flip: np.uint64
) -> tuple[np.uint64, np.uint64]:
    """+-x * 2^s mod p for canonical x and 0 <= s < 64 (a uint64): a rotation of the 127
    bits; flip = 0 or all ones: p - v = (~lo, (2^63 - 1) ^ hi), in [1, p]. Branchless: hi >> 63
    is 0, and lo >> (63 - s) >> 1 avoids a shift by 64 when s = 0."""
    olo = (lo << s) | (hi >> (_S63 - s))
    ohi = ((hi << s) | ((lo >> (_S63 - s)) >> _S1)) & _M63
    return olo ^ flip, ohi ^ (flip & _M63)


@_inline
def _add(xl: np.uint64, xh: np.uint64, yl: np.uint64, yh: np.uint64) -> tuple[np.uint64, np.uint64]:
    """x + y for canonical x and y in [0, p]: x + y < 2p."""
    lo = xl + yl
    return _canon2p(lo, xh + yh + _U(lo < xl))


@_inline
def _sub(xl: np.uint64, xh: np.uint64, yl: np.uint64, yh: np.uint64) -> tuple[np.uint64, np.uint64]:
    """x - y = x + (p - y), p - y = (~lo, (2^63 - 1) ^ hi) in [1, p]."""
    return _add(xl, xh, ~yl, _M63 ^ yh)


@_inline
def _mul(xl: np.uint64, xh: np.uint64, yl: np.uint64, yh: np.uint64) -> tuple[np.uint64, np.uint64]:
    lo, hi = _mulred(xl, xh, yl, yh)
    return _canon3(lo, hi, _ZERO)


# -- elementwise kernels: x, y, o hold n elements (2n words); "1" kernels take a constant ----
@_kernel
def mul(x: np.ndarray, y: np.ndarray, o: np.ndarray, n: int) -> None:
    for i in range(n):
        o[2 * i], o[2 * i + 1] = _mul(x[2 * i], x[2 * i + 1], y[2 * i], y[2 * i + 1])


@_kernel
def mul1(x: np.ndarray, cl: np.uint64, ch: np.uint64, o: np.ndarray, n: int) -> None:
    for i in range(n):
        o[2 * i], o[2 * i + 1] = _mul(x[2 * i], x[2 * i + 1], cl, ch)


@_kernel
def add(x: np.ndarray, y: np.ndarray, o: np.ndarray, n: int) -> None:
    for i in range(n):
        o[2 * i], o[2 * i + 1] = _add(x[2 * i], x[2 * i + 1], y[2 * i], y[2 * i + 1])


@_kernel
def add1(x: np.ndarray, cl: np.uint64, ch: np.uint64, o: np.ndarray, n: int) -> None:
    for i in range(n):
        o[2 * i], o[2 * i + 1] = _add(x[2 * i], x[2 * i + 1], cl, ch)


@_kernel
def sub(x: np.ndarray, y: np.ndarray, o: np.ndarray, n: int) -> None:
    for i in range(n):
        o[2 * i], o[2 * i + 1] = _sub(x[2 * i], x[2 * i + 1], y[2 * i], y[2 * i + 1])


@_kernel
def sub1(x: np.ndarray, cl: np.uint64, ch: np.uint64, o: np.ndarray, n: int) -> None:
    """o = x - c."""
    for i in range(n):
        o[2 * i], o[2 * i + 1] = _sub(x[2 * i], x[2 * i + 1], cl, ch)


@_kernel
def rsub1(cl: np.uint64, ch: np.uint64, y: np.ndarray, o: np.ndarray, n: int) -> None:
    """o = c - y."""
    for i in range(n):
        o[2 * i], o[2 * i + 1] = _sub(cl, ch, y[2 * i], y[2 * i + 1])


@_kernel
def neg(x: np.ndarray, o: np.ndarray, n: int) -> None:
    """o = p - x, and 0 for x = 0."""
    for i in range(n):
        lo = ~x[2 * i]
        hi = _M63 ^ x[2 * i + 1]
        keep = _ZERO - _U((lo != _M64) | (hi != _M63))  # all ones unless x was 0
        o[2 * i] = lo & keep
        o[2 * i + 1] = hi & keep


@_kernel
def muladd(
    c: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    x1: np.ndarray,
    y1: np.ndarray,
    x2: np.ndarray,
    y2: np.ndarray,
    x3: np.ndarray,
    y3: np.ndarray,
    npairs: int,
    o: np.ndarray,
    n: int,
) -> None:
    """o = c + sum_{q < npairs} xq * yq (1 <= npairs <= 4; unused pairs are ignored): the
    partially reduced products are summed in 192 bits and reduced once."""
    if npairs == 1:
        for i in range(n):
            a = 2 * i
            pl, ph = _mulred(x0[a], x0[a + 1], y0[a], y0[a + 1])
            lo, hi, top = _acc(c[a], c[a + 1], _ZERO, pl, ph)
            o[a], o[a + 1] = _canon3(lo, hi, top)
    elif npairs == 2:
        for i in range(n):
            a = 2 * i
            pl, ph = _mulred(x0[a], x0[a + 1], y0[a], y0[a + 1])
            lo, hi, top = _acc(c[a], c[a + 1], _ZERO, pl, ph)
            pl, ph = _mulred(x1[a], x1[a + 1], y1[a], y1[a + 1])
            lo, hi, top = _acc(lo, hi, top, pl, ph)
            o[a], o[a + 1] = _canon3(lo, hi, top)
    else:
        for i in range(n):
            a = 2 * i
            pl, ph = _mulred(x0[a], x0[a + 1], y0[a], y0[a + 1])
            lo, hi, top = _acc(c[a], c[a + 1], _ZERO, pl, ph)
            pl, ph = _mulred(x1[a], x1[a + 1], y1[a], y1[a + 1])
            lo, hi, top = _acc(lo, hi, top, pl, ph)
            pl, ph = _mulred(x2[a], x2[a + 1], y2[a], y2[a + 1])
            lo, hi, top = _acc(lo, hi, top, pl, ph)
            if npairs > 3:
                pl, ph = _mulred(x3[a], x3[a + 1], y3[a], y3[a + 1])
                lo, hi, top = _acc(lo, hi, top, pl, ph)
            o[a], o[a + 1] = _canon3(lo, hi, top)


# -- linear combinations with public coefficients ---------------------------------------------
@_inline
def _lin_rot(
    a0: np.ndarray,
    a1: np.ndarray,
    a2: np.ndarray,
    a3: np.ndarray,
    nt: int,
    s: tuple[np.uint64, np.uint64, np.uint64, np.uint64],
    f: tuple[np.uint64, np.uint64, np.uint64, np.uint64],
    a: int,
) -> tuple[np.uint64, np.uint64, np.uint64]:
    """sum_j (-1)^f_j 2^s_j aj[element a/2] for j < nt (1 <= nt <= 4), unreduced (192 bits)."""
    lo, hi = _rot(a0[a], a0[a + 1], s[0], f[0])
    top = _ZERO
    if nt > 1:
        vl, vh = _rot(a1[a], a1[a + 1], s[1], f[1])
        lo, hi, top = _acc(lo, hi, top, vl, vh)
    if nt > 2:
        vl, vh = _rot(a2[a], a2[a + 1], s[2], f[2])
        lo, hi, top = _acc(lo, hi, top, vl, vh)
    if nt > 3:
        vl, vh = _rot(a3[a], a3[a + 1], s[3], f[3])
        lo, hi, top = _acc(lo, hi, top, vl, vh)
    return lo, hi, top


@_inline
def _lin_mul(
    a0: np.ndarray,
    a1: np.ndarray,
    a2: np.ndarray,
    a3: np.ndarray,
    nt: int,
    cl: tuple[np.uint64, np.uint64, np.uint64, np.uint64],
    ch: tuple[np.uint64, np.uint64, np.uint64, np.uint64],
    a: int,
) -> tuple[np.uint64, np.uint64, np.uint64]:
    """sum_j c_j aj[element a/2] for j < nt with canonical c_j = (cl[j], ch[j]), unreduced."""
    lo, hi = _mulred(a0[a], a0[a + 1], cl[0], ch[0])
    top = _ZERO
    if nt > 1:
        vl, vh = _mulred(a1[a], a1[a + 1], cl[1], ch[1])
        lo, hi, top = _acc(lo, hi, top, vl, vh)
    if nt > 2:
        vl, vh = _mulred(a2[a], a2[a + 1], cl[2], ch[2])
        lo, hi, top = _acc(lo, hi, top, vl, vh)
    if nt > 3:
        vl, vh = _mulred(a3[a], a3[a + 1], cl[3], ch[3])
        lo, hi, top = _acc(lo, hi, top, vl, vh)
    return lo, hi, top


@_kernel
def lincomb_rot(
    a0: np.ndarray,
    a1: np.ndarray,
    a2: np.ndarray,
    a3: np.ndarray,
    nt: int,
    shift: np.ndarray,
    flip: np.ndarray,
    o: np.ndarray,
    n: int,
) -> None:
    """o = sum_{j < nt} (-1)^flip_j 2^shift_j aj: shift (uint64 < 64) and flip (0 or all
    ones, uint64) of length 4."""
    s = (shift[0], shift[1], shift[2], shift[3])
    f = (flip[0], flip[1], flip[2], flip[3])
    if nt == 2:
        for i in range(n):
            lo, hi, top = _lin_rot(a0, a1, a2, a3, 2, s, f, 2 * i)
            o[2 * i], o[2 * i + 1] = _canon3(lo, hi, top)
    else:
        for i in range(n):
            lo, hi, top = _lin_rot(a0, a1, a2, a3, nt, s, f, 2 * i)
            o[2 * i], o[2 * i + 1] = _canon3(lo, hi, top)


@_kernel
def lincomb_mul(
    a0: np.ndarray,
    a1: np.ndarray,
    a2: np.ndarray,
    a3: np.ndarray,
    nt: int,
    cl: np.ndarray,
    ch: np.ndarray,
    o: np.ndarray,
    n: int,
) -> None:
    """o = sum_{j < nt} c_j aj for canonical coefficients c_j = (cl[j], ch[j])."""
    c0 = (cl[0], cl[1], cl[2], cl[3])
    c1 = (ch[0], ch[1], ch[2], ch[3])
    if nt == 2:
        for i in range(n):
            lo, hi, top = _lin_mul(a0, a1, a2, a3, 2, c0, c1, 2 * i)
            o[2 * i], o[2 * i + 1] = _canon3(lo, hi, top)
    else:
        for i in range(n):
            lo, hi, top = _lin_mul(a0, a1, a2, a3, nt, c0, c1, 2 * i)
            o[2 * i], o[2 * i + 1] = _canon3(lo, hi, top)


@_kernel
def lincomb_rot_check(
    a0: np.ndarray,
    a1: np.ndarray,
    a2: np.ndarray,
    a3: np.ndarray,
    nt: int,
    shift: np.ndarray,
    flip: np.ndarray,
    o: np.ndarray,
    cshift: np.ndarray,
    cflip: np.ndarray,
    e: np.ndarray,
    n: int,
) -> int:
    """o = sum_j (-1)^flip_j 2^shift_j aj as `lincomb_rot`, and, in the same pass, the
    number of elements where sum_j (-1)^cflip_j 2^cshift_j aj differs from e (a Shamir
    reconstruction and the consistency check of one further share)."""
    s = (shift[0], shift[1], shift[2], shift[3])
    f = (flip[0], flip[1], flip[2], flip[3])
    cs = (cshift[0], cshift[1], cshift[2], cshift[3])
    cf = (cflip[0], cflip[1], cflip[2], cflip[3])
    bad = 0
    if nt == 2:
        for i in range(n):
            a = 2 * i
            lo, hi, top = _lin_rot(a0, a1, a2, a3, 2, s, f, a)
            o[a], o[a + 1] = _canon3(lo, hi, top)
            lo, hi, top = _lin_rot(a0, a1, a2, a3, 2, cs, cf, a)
            lo, hi = _canon3(lo, hi, top)
            bad += (lo != e[a]) | (hi != e[a + 1])
    else:
        for i in range(n):
            a = 2 * i
            lo, hi, top = _lin_rot(a0, a1, a2, a3, nt, s, f, a)
            o[a], o[a + 1] = _canon3(lo, hi, top)
            lo, hi, top = _lin_rot(a0, a1, a2, a3, nt, cs, cf, a)
            lo, hi = _canon3(lo, hi, top)
            bad += (lo != e[a]) | (hi != e[a + 1])
    return bad


@_kernel
def lincomb_mul_ne(
    a0: np.ndarray,
    a1: np.ndarray,
    a2: np.ndarray,
    a3: np.ndarray,
    nt: int,
    cl: np.ndarray,
    ch: np.ndarray,
    e: np.ndarray,
    n: int,
) -> int:
    """The number of elements where sum_{j < nt} c_j aj differs from e."""
    c0 = (cl[0], cl[1], cl[2], cl[3])
    c1 = (ch[0], ch[1], ch[2], ch[3])
    bad = 0
    for i in range(n):
        a = 2 * i
        lo, hi, top = _lin_mul(a0, a1, a2, a3, nt, c0, c1, a)
        lo, hi = _canon3(lo, hi, top)
        bad += (lo != e[a]) | (hi != e[a + 1])
    return bad


# -- validation ------------------------------------------------------------------------------
@_kernel
def copy_canonical(w: np.ndarray, o: np.ndarray, n: int) -> int:
    """o = w (2n words) and the number of elements >= p in w (0 means all canonical)."""
    bad = 0
    for i in range(n):
        lo = w[2 * i]
        hi = w[2 * i + 1]
        o[2 * i] = lo
        o[2 * i + 1] = hi
        bad += (hi > _M63) | ((hi == _M63) & (lo == _M64))
    return bad


@_kernel
def count_noncanonical(w: np.ndarray, n: int) -> int:
    """The number of elements >= p among the n elements in w."""
    bad = 0
    for i in range(n):
        lo = w[2 * i]
        hi = w[2 * i + 1]
        bad += (hi > _M63) | ((hi == _M63) & (lo == _M64))
    return bad


# -- allocator -------------------------------------------------------------------------------
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_malloc() -> bool:
    """Keep freed arrays of up to 32 MiB in glibc's heap (mmap threshold 32 MiB, trim
    threshold 128 MiB) instead of returning them to the kernel after each use.

    With the kernels at a few ns per element, the page faults of freshly mapped result arrays
    dominate: a Shamir fixed_mul of 10^5 touches ~2300 new pages (9.6 MB) per run, about
    12 ms of ~36 ms; with this 0 (~23 ms). glibc's own dynamic threshold does not help because
    the heap top is trimmed again at twice the last freed size. Process-wide, done once on the
    first hot GF(2^127-1) operation; skipped off glibc and when the user set either
    MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_. Returns whether it applied."""
    if not sys.platform.startswith("linux") or any(
        v in os.environ for v in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
    ):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    return bool(ok and mallopt(_M_TRIM_THRESHOLD, 128 << 20))
