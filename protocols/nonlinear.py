"""Non-linear functions of shared fixed-point values: sigmoid (piecewise-linear and smooth),
exp, reciprocal, inverse square root and square root. Each states its interval, what happens
outside it (clipping), its maximum error and its rounds.

Inputs and outputs are fixed-point shares with f fractional bits (default 16). Internally the
smooth functions work with F2 = f + 4 (exp) or F3 = f + 8 (Newton iterations) fractional
bits, so the rounding of the intermediate truncations stays well below the output ulp; every
intermediate stays inside the truncation range (|v| < 2^62 on Z_2^64, 2^63 on GF(2^127-1)),
which the clipping of the inputs guarantees. The error bounds below were derived from the
approximation error (stated with each function) plus at most one output ulp 2^-f of
truncation error and the propagated internal rounding, and are checked by the tests on 10^4
random points plus edge cases against numpy float64.

Building blocks: comparisons (protocols.comparison), fixed-point products
(protocols.fixed), truncation (protocols.truncation). References:
  [SecureML] P. Mohassel, Y. Zhang, "SecureML", IEEE S&P 2017, sec. 4.3 (piecewise sigmoid).
  [CS10] O. Catrina, A. Saxena, "Secure Computation With Fixed-Point Numbers", FC 2010,
         sec. 4 (Newton-Raphson reciprocal with a normalised input and a linear initial
         approximation 48/17 - 32/17 d on [1/2, 1)).
  [AS19] A. Aly, N. P. Smart, "Benchmarking Privacy Preserving Scientific Operations",
         ACNS 2019 (exp via range reduction and a polynomial; inverse square root via
         normalisation and Newton-Raphson).
Normalisation (finding k with 2^k <= x < 2^(k+1)) compares x with every power of two of the
interval in one batch of comparisons; the scale factors are linear in the comparison bits.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from protocols import beaver, fixed
from protocols.arith.fixedpoint import DEFAULT_F
from protocols.comparison import clip, ltz, ltz_mul
from protocols.session import Session, Share
from protocols.truncation import check_product_room, trunc

#: exp is computed on [EXP_LO, EXP_HI]; inputs outside are clipped to it
EXP_LO, EXP_HI = -16.0, 12.0
#: reciprocal / inv_sqrt / sqrt: inputs clipped to [2^NORM_LO, 2^NORM_HI - 2^-f]
NORM_LO, NORM_HI = -8, 16
#: smooth sigmoid: |x| clipped to SIGMOID_B (sigma(16) = 1 - 1.1e-7)
SIGMOID_B = 16
_T = 28  # scale exponent of the normalisation multipliers


def _enc(v: float, f: int) -> int:
    return int(round(v * (1 << f)))


@lru_cache(maxsize=8)
def _exp_poly(degree: int = 6) -> tuple[float, ...]:
    """Monomial coefficients of the Chebyshev interpolant of e^z on [EXP_LO/16, EXP_HI/16]
    (pure; max relative error 3.2e-6 for degree 6)."""
    from numpy.polynomial import chebyshev as ch

    lo, hi = EXP_LO / 16, EXP_HI / 16
    nodes = np.cos((np.arange(degree + 1) + 0.5) * np.pi / (degree + 1)) * (hi - lo) / 2 + (hi + lo) / 2
    return tuple(float(c) for c in ch.cheb2poly(ch.chebfit(nodes, np.exp(nodes), degree)))


async def _stack_ltz(s: Session, xs: list[Share]) -> list[Share]:
    """ltz of several equal-shape shares in one batch (the rounds of one ltz)."""
    b = await ltz(s, Share(np.stack([x.data for x in xs]), s))
    return [b[i] for i in range(len(xs))]


async def poly(s: Session, z: Share, coeffs: tuple[float, ...], f: int) -> Share:
    """sum_k coeffs[k] z^k for fixed-point z (f bits); powers in ceil(log2 d) levels.

    Rounds: 2*ceil(log2 d) + 1 (d = degree >= 1).   Error: each power within ~k ulp of the
    exact power of z~ (|z~| <= 1), plus one ulp for the final truncation, plus the encoding
    of the coefficients (2^-(f+1) each).
    """
    d = len(coeffs) - 1
    powers: list[Share] = [z]  # powers[i] = z^(i+1)
    while len(powers) < d:
        top = powers[-1]
        k = len(powers)
        m = min(k, d - k)  # next powers z^(k+1) .. z^(k+m) = z^k * z^1..z^m
        left = Share(np.stack([top.data] * m), s)
        right = Share(np.stack([p.data for p in powers[:m]]), s)
        prod = await fixed.mul(s, left, right, f)
        powers.extend(prod[i] for i in range(m))
    acc = powers[0] * _enc(coeffs[1], f)
    for k in range(2, d + 1):
        acc = acc + powers[k - 1] * _enc(coeffs[k], f)
    acc = acc + _enc(coeffs[0], 2 * f)
    return await trunc(s, acc, f)


async def _exp_reduced(s: Session, z: Share, f2: int) -> Share:
    """e^(16 z) for z (f2 bits) in [EXP_LO/16, EXP_HI/16]: polynomial, then 4 squarings.
    Rounds: 7 + 8 = 15."""
    y = await poly(s, z, _exp_poly(), f2)
    for _ in range(4):
        y = await fixed.square(s, y, f2)
    return y


async def exp(s: Session, x: Share, f: int = DEFAULT_F) -> Share:
    """e^x for x in [-16, 12] (clipped to it outside): range reduction z = x/16, a degree-6
    Chebyshev polynomial for e^z on [-1, 0.75] (relative error 3.2e-6), and e^x = (e^z)^16
    by four squarings, all with f + 4 fractional bits (z needs no truncation: its f + 4 bit
    encoding is the integer encoding x with f bits).

    Error: |exp~(x) - e^x| <= 2e-4 * e^x + 2^-f for x~ in [-16, 12] (relative 2e-4:
    16 x the polynomial and internal rounding errors); for x~ < -16 the result is
    e^-16 ~ 1.1e-7 +- 2^-f, for x~ > 12 it is e^12 (clipped).
    Shapes: x: S; returns S.   Rounds: clip (ltz_mul) + 15 + 1 = 19 (Z_2^64: clip 3), 24 (GF(p) from
    edaBits: clip 8).
    Range: f <= 20 on Z_2^64 (e^24 * 2^(2f+8) < 2^62).   Raises: ParameterError.
    """
    f2 = f + 4
    check_product_room(s.domain, f2 + 8)
    xc = await clip(s, x, _enc(EXP_LO, f), _enc(EXP_HI, f))
    y = await _exp_reduced(s, xc, f2)  # the integer of x at f bits is x/16 at f + 4 bits
    return await trunc(s, y, 4)


async def sigmoid_piecewise(s: Session, x: Share, f: int = DEFAULT_F) -> Share:
    """The piecewise-linear sigmoid of SecureML (sec. 4.3): 0 for x < -1/2, x + 1/2 on
    [-1/2, 1/2], 1 for x > 1/2; computed as clip(x + 1/2, 0, 1). Exact on its definition
    (no rounding); as an approximation of the logistic function its maximum error is
    1 - sigma(1/2) = 0.3775 (at x = +-1/2).
    Shapes: x: S; returns S.   Rounds: those of `comparison.clip`: 3 on Z_2^64 (the products ride in the
    comparison's last round), 8 on GF(p) from edaBits (the products ride in its first
    message).   Bytes: those of clip on N elements.
    """
    return await clip(s, x + _enc(0.5, f), 0, _enc(1.0, f))


async def _newton_recip(s: Session, d: Share, w: Share, f3: int, iters: int) -> Share:
    """w <- w + w (1 - d w): quadratic convergence to 1/d. 4 rounds per iteration."""
    one = 1 << f3
    for _ in range(iters):
        e = await fixed.mul(s, d, w, f3)
        w = w + await fixed.mul(s, w, one - e, f3)
    return w


async def sigmoid(s: Session, x: Share, f: int = DEFAULT_F) -> Share:
    """The logistic function 1 / (1 + e^-x), smooth: with a = min(|x|, 16),
    sigma(|x|) = 1 / (1 + e^-a) (exp as in `exp`, then Newton-Raphson for the reciprocal on
    (1, 2] from the linear start 24/17 - 8/17 d, three iterations), and
    sigma(x) = sigma(|x|) for x >= 0, 1 - sigma(|x|) for x < 0. Internally f + 4 bits.

    Error: |sigmoid~(x) - sigma(x)| <= 2^-f + 1e-4 on all of R (|x| > 16: clipped, where
    sigma is within 1.2e-7 of 0 or 1).   Shapes: x: S; returns S.
    Rounds: ltz_mul + 15 (exp) + 1 + 12 (Newton) + 2 = 33 (Z_2^64 with ltz_tuples: ltz_mul
    3), 38 (GF(p) from edaBits: ltz_mul 8).
    Preprocessing: 3 comparisons with products per element, 16 fixed-point products, 4
    truncations.
    """
    f2 = f + 4
    check_product_room(s.domain, f2 + 8)
    B = _enc(SIGMOID_B, f)
    # [x<0], [x<-B], [x<B] and their products with x in the comparisons' rounds (ltz_mul);
    # a = min(|x|, B) = B (u + 1 - v) + x (v + u - 2 neg)
    xs = Share(np.stack([x.data, (x + B).data, (x - B).data]), s)
    bits, px = await ltz_mul(s, xs, Share(np.stack([x.data] * 3), s))
    neg, u, v = bits[0], bits[1], bits[2]
    a = px[2] + px[1] - px[0] * 2 + (u - v + 1) * B
    e = await _exp_reduced(s, -a, f2)  # e^-a, f2 bits; -a at f bits = -a/16 at f2 bits
    d = e + (1 << f2)  # 1 + e^-a in (1, 2]
    w0 = (await fixed.mul_public(s, d, -8 / 17, f2)) + _enc(24 / 17, f2)
    r = await _newton_recip(s, d, w0, f2, 3)  # sigma(|x|) in [1/2, 1)
    r = await trunc(s, r, 4)
    return r + await beaver.mul(s, neg, (1 << f) - r * 2)


async def _normalise(s: Session, x: Share, f: int, lo: int, hi: int) -> tuple[Share, list[Share]]:
    """Clip x to [2^lo, 2^hi - 2^-f] and return (xc, c) with c[j] = [xc >= 2^(lo+1+j)]
    for the thresholds strictly inside (lo, hi): one batch of comparisons + one product.
    Rounds: ltz + 1."""
    thr = [x - _enc(2.0**j, f) for j in range(lo, hi + 1)]
    bits = await _stack_ltz(s, thr)  # bits[i] = [x < 2^(lo+i)]
    below, above = bits[0], 1 - bits[-1]
    xs = Share(np.stack([below.data, above.data]), s)
    ds = Share(np.stack([(_enc(2.0**lo, f) - x).data, (_enc(2.0**hi, f) - 1 - x).data]), s)
    p = await beaver.mul(s, xs, ds)
    xc = x + p[0] + p[1]
    c = [1 - b for b in bits[1:-1]]  # [x >= 2^j], j = lo+1 .. hi-1
    return xc, c


def _scale(s: Session, c: list[Share], exps: list[int], like: Share) -> Share:
    """sum_k onehot_k 2^exps[k] with onehot_k = [2^(lo+k) <= x < 2^(lo+k+1)], as the linear
    telescoped form m_0 + sum_{k>=1} c_k (m_k - m_{k-1}) (local)."""
    m = [1 << e for e in exps]
    acc = Share(s.domain.zeros(like.shape), s) + m[0]
    for k in range(1, len(m)):
        acc = acc + c[k - 1] * (m[k] - m[k - 1])
    return acc


async def reciprocal(s: Session, x: Share, f: int = DEFAULT_F) -> Share:
    """1/x for x in [2^-8, 2^16) (inputs outside, including x <= 0, are clipped to
    [2^-8, 2^16 - 2^-f]): normalisation x_n = x 2^-(k+1) in [1/2, 1) with k = floor(log2 x)
    found by comparing x with all powers of two of the interval, Newton-Raphson
    w <- w (2 - x_n w) from w0 = 48/17 - 32/17 x_n (relative error 1/17, three iterations:
    (1/17)^8) with f + 8 bits [CS10, sec. 4], then 1/x = w 2^-(k+1).

    Error: |recip~(x) - 1/x| <= 2e-5 / x + 2^-f (relative 2e-5 from the normalised input's
    rounding, plus the output ulp).   Shapes: x: S; returns S.
    Rounds: ltz + 1 + 2 + 1 + 12 + 2 = 21 (Z_2^64, ltz 3), 26 (GF(p) from edaBits, ltz 8).
    Preprocessing: 25 comparisons per element. Raises: ParameterError.
    """
    f3 = f + 8
    check_product_room(s.domain, f3)
    lo, hi = NORM_LO, NORM_HI
    xc, c = await _normalise(s, x, f, lo, hi)
    ks = list(range(lo, hi))  # region k: 2^k <= x < 2^(k+1)
    M = _scale(s, c, [_T - k - 1 for k in ks], x)
    # x_n with f3 bits: X * 2^(T-k-1) / 2^(T - 8) = x 2^(f3 - k - 1)
    xn = await trunc(s, await beaver.mul(s, xc, M), _T - (f3 - f))
    w0 = (await fixed.mul_public(s, xn, -32 / 17, f3)) + _enc(48 / 17, f3)
    w = await _newton_recip(s, xn, w0, f3, 3)
    # 1/x = w 2^-(k+1): W * 2^(T-k-1) / 2^(T + f3 - f)
    return await trunc(s, await beaver.mul(s, w, M), _T + f3 - f)


async def inv_sqrt(s: Session, x: Share, f: int = DEFAULT_F) -> Share:
    """1/sqrt(x) for x in [2^-8, 2^16) (clipped to it outside, like `reciprocal`):
    normalisation y = x 2^-2e in [1/4, 1) with e = ceil((k+1)/2), Newton-Raphson
    w <- w (3/2 - (y/2) w^2) from the linear start 2.13 - 1.215 y (relative error 0.087,
    three iterations) with f + 8 bits [AS19], then 1/sqrt(x) = w 2^-e.

    Error: |inv_sqrt~(x) - x^-1/2| <= 2e-5 x^-1/2 + 2^-f.   Shapes: x: S; returns S.
    Rounds: ltz + 1 + 2 + 1 + 18 + 2 = 27 (Z_2^64, ltz 3), 32 (GF(p) from edaBits, ltz 8).
    Raises: ParameterError.
    """
    return await _inv_sqrt(s, x, f, want_sqrt=False)


async def _inv_sqrt(s: Session, x: Share, f: int, *, want_sqrt: bool) -> Share:
    f3 = f + 8
    check_product_room(s.domain, f3)
    lo, hi = NORM_LO, NORM_HI
    xc, c = await _normalise(s, x, f, lo, hi)
    es = [-((-(k + 1)) // 2) for k in range(lo, hi)]  # ceil((k+1)/2)
    M1 = _scale(s, c, [_T - 2 * e - 1 for e in es], x)  # gives y/2
    M2 = _scale(s, c, [_T - e for e in es], x)
    h = await trunc(s, await beaver.mul(s, xc, M1), _T - (f3 - f))  # y/2 with f3 bits
    w = (await fixed.mul_public(s, h, -2 * 1.215, f3)) + _enc(2.13, f3)
    half = 1 << (f3 - 1)
    for _ in range(3):
        w2 = await fixed.square(s, w, f3)
        t = await fixed.mul(s, h, w2, f3)
        w = w + await fixed.mul(s, w, half - t, f3)
    if want_sqrt:  # sqrt(x) = sqrt(y) 2^e = 2 h w 2^e: W' = 2hw (f3 bits) * 2^(T+e) / 2^(T+f3-f)
        yw = await fixed.mul(s, h * 2, w, f3)
        M3 = _scale(s, c, [_T + e for e in es], x)
        return await trunc(s, await beaver.mul(s, yw, M3), _T + f3 - f)
    return await trunc(s, await beaver.mul(s, w, M2), _T + f3 - f)


async def sqrt(s: Session, x: Share, f: int = DEFAULT_F) -> Share:
    """sqrt(x) for x in [2^-8, 2^16) (clipped to it outside; so x <= 0 gives 1/16): the
    inverse square root's normalisation and Newton iterations, then sqrt(x) = y w 2^e with
    y w = sqrt(y) computed with f + 8 bits (no amplification of the output ulp).
    Error: |sqrt~(x) - sqrt(x)| <= 2e-5 sqrt(x) + 2^-f.
    Rounds: 29 (Z_2^64), 34 (GF(p) from edaBits) (as inv_sqrt plus one product with
    truncation).
    """
    return await _inv_sqrt(s, x, f, want_sqrt=True)
