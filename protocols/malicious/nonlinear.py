"""Non-linear fixed-point functions for malicious security: SecureML's piecewise sigmoid and
the inverse square root, on MShares of protocols.malicious.chida18 (Shamir) or, on additive
sessions, AShares of protocols.malicious.spdz2k (SPDZ2k): the primitives come through
protocols.malicious.backend, which routes them by the session's scheme.

The algorithms are exactly protocols.nonlinear's (the same fixed-point operations, constants
and iteration counts), built from the checked steps only (`compare.ltz`, `chida18.mul`,
`fixed.trunc`), so every product, comparison and truncation inside is covered by the
verification before any output [CGHIKLN18, sec. 3]:

  [SecureML] P. Mohassel, Y. Zhang, "SecureML", IEEE S&P 2017, sec. 4.3: the piecewise
             sigmoid clip(z + 1/2, 0, 1).
  [AS19]     A. Aly, N. P. Smart, "Benchmarking Privacy Preserving Scientific Operations",
             ACNS 2019: inverse square root by normalisation (one batch of comparisons with
             the powers of two of the interval) and Newton-Raphson.
  [CGHIKLN18] K. Chida, D. Genkin, K. Hamada, D. Ikarashi, R. Kikuchi, Y. Lindell, A. Nof,
             "Fast Large-Scale Honest-Majority MPC for Malicious Adversaries", CRYPTO 2018.

Operands of an older MAC-key epoch (a verification ran in between, e.g. an inline mask
preparation) are re-keyed by `batch.refresh_many` before any linear combination.
Security: malicious with abort, t < n/2 (that of the building blocks).
"""

from __future__ import annotations

import numpy as np

from protocols.arith.fixedpoint import DEFAULT_F
from protocols.fixed import encode_public
from protocols.malicious.backend import ltz, mul, refresh_many, stack, trunc
from protocols.malicious.chida18 import MShare
from protocols.nonlinear import _T, NORM_HI, NORM_LO, _enc
from protocols.session import Session
from protocols.truncation import check_product_room


async def fixed_mul(s: Session, x: MShare, y: MShare, f: int) -> MShare:
    """trunc(x * y, f): one checked product, one truncation."""
    return await trunc(s, await mul(s, x, y), f)


async def mul_public(s: Session, x: MShare, c: float | np.ndarray, f: int = DEFAULT_F) -> MShare:
    """trunc(x * round(c 2^f), f) for a public real (array) c (protocols.fixed.mul_public)."""
    C = np.broadcast_to(encode_public(s, c, f), x.shape)
    return await trunc(s, x * np.ascontiguousarray(C), f)


async def piecewise_sigmoid_raw(s: Session, z_raw: MShare, f: int, *, bits: int | None = None) -> MShare:
    """SecureML's sigmoid of z given with 2f fractional bits, output with f bits, as
    protocols.apps.ml.sgd.piecewise_sigmoid_raw: p = u - b1 u - b2 u + b2 with u = trunc(z) +
    1/2, b1 = [z < -1/2], b2 = [z > 1/2] (one batch of two ltz on the untruncated z).
    Rounds: ltz 9 + trunc 1 + product 2 = 12 with prepared masks under the current key, + 5
    before the truncation (`chida18.check_values` of the ltz's products, review5) and + 5
    before the ltz when a product precedes it (SPDZ2k: no value check, its masks are uniform).
    Range: |z_raw| + 2^(2f-1) < 2^(l-1), l = `bits` (ltz's width; default 64 on GF(2^127 - 1),
    |z_raw| < 2^62): a caller that has proven a smaller bound passes a shorter comparison."""
    h2 = 1 << (2 * f - 1)
    h, one = 1 << (f - 1), 1 << f
    b = await ltz(s, stack([z_raw + h2, (-z_raw) + h2]), bits=bits)
    t = await trunc(s, z_raw, f)
    b, t = await refresh_many(s, b, t)
    prod = await mul(s, b, stack([t, t]))
    return t + h - prod[0] - prod[1] - b[0] * h + b[1] * (one - h)


async def _normalise(s: Session, x: MShare, f: int, lo: int, hi: int) -> tuple[MShare, list[MShare]]:
    """protocols.nonlinear._normalise: clip x to [2^lo, 2^hi - 2^-f]; c[j] = [xc >= 2^(lo+1+j)]."""
    bits = await ltz(s, stack([x - _enc(2.0**j, f) for j in range(lo, hi + 1)]))
    x, bits = await refresh_many(s, x, bits)
    below, above = bits[0], 1 - bits[-1]
    ds = stack([(-x) + _enc(2.0**lo, f), (-x) + (_enc(2.0**hi, f) - 1)])
    p = await mul(s, stack([below, above]), ds)
    xc = x + p[0] + p[1]
    return xc, [1 - bits[i] for i in range(1, hi - lo)]


def _scale(c: list[MShare], exps: list[int]) -> MShare:
    """sum_k onehot_k 2^exps[k], telescoped (protocols.nonlinear._scale; local)."""
    m = [1 << e for e in exps]
    acc = c[0] * 0 + m[0]
    for k in range(1, len(m)):
        acc = acc + c[k - 1] * (m[k] - m[k - 1])
    return acc


async def inv_sqrt(s: Session, x: MShare, f: int = DEFAULT_F) -> MShare:
    """1/sqrt(x) for x in [2^-8, 2^16) (clipped to it outside), protocols.nonlinear.inv_sqrt's
    algorithm [AS19]: normalisation y = x 2^-2e in [1/4, 1), Newton-Raphson
    w <- w (3/2 - (y/2) w^2) from 2.13 - 1.215 y, three iterations with f + 8 bits.
    Error: |inv_sqrt~(x) - x^-1/2| <= 2e-5 x^-1/2 + 2^-f (as the semi-honest version).
    Rounds: ltz 9 + 2 + 2 + 1 + 1 + 3 * (2 + 1 + 2 + 1 + 2 + 1) + 2 + 1 = 45 with masks
    prepared under the current key (more when masks are prepared inline).
    Preprocessing: 25 comparisons and 13 truncations per element."""
    f3 = f + 8
    check_product_room(s.domain, f3)
    lo, hi = NORM_LO, NORM_HI
    xc, c = await _normalise(s, x, f, lo, hi)
    es = [-((-(k + 1)) // 2) for k in range(lo, hi)]  # ceil((k+1)/2)
    M1 = _scale(c, [_T - 2 * e - 1 for e in es])
    M2 = _scale(c, [_T - e for e in es])
    h = await trunc(s, await mul(s, xc, M1), _T - (f3 - f))  # y/2 with f3 bits
    w = (await mul_public(s, h, -2 * 1.215, f3)) + _enc(2.13, f3)
    half = 1 << (f3 - 1)
    for _ in range(3):
        w2 = await fixed_mul(s, w, w, f3)
        t = await fixed_mul(s, h, w2, f3)
        (w, t) = await refresh_many(s, w, t)
        step = await fixed_mul(s, w, (-t) + half, f3)
        w, step, h = await refresh_many(s, w, step, h)
        w = w + step
    (w, M2) = await refresh_many(s, w, M2)
    return await trunc(s, await mul(s, w, M2), _T + f3 - f)


async def refine_inv_sqrt(s: Session, v: MShare, y0: MShare, f: int, extra: int, steps: int = 2) -> MShare:
    """protocols.apps.ml.data.refine_inv_sqrt: Newton steps y <- y (3 - v y^2) / 2 from y0
    (f bits) to f + extra bits.  Rounds: 9 per step with prepared masks."""
    g = f + extra
    y = y0 * (1 << extra)
    for _ in range(steps):
        y2 = await fixed_mul(s, y, y, g)
        t = await trunc(s, await mul(s, v, y2), f)  # v y^2, g bits
        (y, t) = await refresh_many(s, y, t)
        y = await fixed_mul(s, y, (-t) + (3 << g), g + 1)
    return y


__all__ = ["fixed_mul", "inv_sqrt", "mul_public", "piecewise_sigmoid_raw", "refine_inv_sqrt"]
