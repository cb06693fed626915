"""Differential privacy inside MPC: discrete Laplace and discrete Gaussian noise generated
jointly from shared random bits, so that no party (and no coalition of up to the sharing
threshold) knows the noise that is added to a released aggregate.

Why this design (and not the alternatives):

* Each party adding its own noise and summing (distributed noise) is not acceptable: a
  coalition of n - 1 parties knows its own noise and subtracts it, leaving 1/n of it.
* Floating-point samplers (inverse CDF on a double) leak through their support holes and
  rounding (I. Mironov, "On Significance of the Least Significant Bits for Differential
  Privacy", ACM CCS 2012). Every probability below is a public integer computed in exact
  decimal arithmetic (`decimal`, correctly rounded exp), every sample an integer.
* Bernoulli(p) under MPC: U uniform in [0, 2^kappa) from shared random bits
  (`uniform_randoms`: the ring's `bounded_randoms`, built from daBits by the dealer-free ot
  source; on a field, sum_i 2^i b_i over kappa random bits, since a field source's
  bounded randoms are statistical masks, not uniform: every party's own randomness goes in,
  so U is uniform as long as one party is honest), then
  B = [U < P] with P = floor(p 2^kappa) public, one secure comparison. |Pr[B = 1] - p| <
  2^-kappa. This is the biased-coin construction of Eriguchi, Ichikawa, Kunihiro, Nuida,
  "Efficient Noise Generation Protocols for Differentially Private Multiparty Computation"
  (IEEE TDSC 2023, Sec. 4-5), with the coin built by a comparison as in Keller, Rotaru,
  Smart, Wood, "Reducing Communication Channels in MPC" / MP-SPDZ's `sfix` bit comparisons.

discrete_laplace(scale t): Pr[X = x] = (1 - a)/(1 + a) a^|x|, a = exp(-1/t) (Canonne,
Kamath, Steinke, "The Discrete Gaussian for Differential Privacy", NeurIPS 2020, Def. 28 and
Prop. 29). X = V (1 + M): V in {-1, 0, +1} with Pr[+-1] = a/(1+a) each (two comparisons of
one uniform U), M geometric Pr[M = m] = (1 - a) a^m. The binary digits of a geometric are
independent: digit j is Bernoulli(a^(2^j) / (1 + a^(2^j))), so M = sum_j 2^j B_j over L
digits is exactly the geometric conditioned on M < 2^L; L is chosen with a^(2^L) <= 2^-kappa.
(The usual G1 - G2 of two geometrics, Inusah and Kozubowski, JSPI 2006, costs 2L
comparisons; this costs L + 2 and one product.) All comparisons in one batch (one `ltz`).

discrete_gaussian(sigma^2): Pr[X = x] ~ exp(-x^2 / (2 sigma^2)) (CKS 2020, Def. 1). Sampled
by a cumulative distribution table on |X| (the CDT sampler of lattice cryptography, e.g.
Peikert, "An Efficient and Parallel Gaussian Sampler for Lattices", CRYPTO 2010): public
thresholds C_1 < ... < C_T (kappa-bit integers, C_m = floor(2^kappa Pr[|X| < m])),
|X| = #{m : U >= C_m} for one uniform U, and a fair sign bit S: X = |X| (1 - 2S). T is
chosen with Pr[|X| >= T] < 2^-kappa. Cost: T comparisons + one product per sample.

Both samplers are within statistical distance 2^-(kappa - log2(L or T) - 1) of the exact
distribution; that distance is added to delta by the caller (`tv_bound`).

Privacy (CKS 2020, Thm. 4 and Sec. 2.2): adding discrete Laplace noise of scale Delta/eps to
an integer query of sensitivity Delta is eps-DP (rho = eps^2 / 2 zCDP); discrete Gaussian
noise of variance parameter sigma^2 is (Delta^2 / (2 sigma^2))-zCDP.

Security: semi-honest (the comparisons' model); the noise is a function of shared uniform
values only and is never opened; only `x + noise` is released by the caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import cast

import numpy as np
import numpy.typing as npt

from protocols import beaver
from protocols.comparison import ltz
from protocols.errors import ParameterError
from protocols.session import Session, Share

#: bits of every Bernoulli threshold / uniform comparand
KAPPA = 48
_DIGITS = 60  # decimal digits of the exact computations (> kappa bits with room)


def _exp_neg(x: Fraction) -> Decimal:
    """exp(-x) correctly rounded to _DIGITS decimal digits (no binary floating point)."""
    with localcontext() as c:
        c.prec = _DIGITS
        return (-(Decimal(x.numerator) / Decimal(x.denominator))).exp()


def _floor_scaled(p: Decimal, kappa: int) -> int:
    with localcontext() as c:
        c.prec = _DIGITS
        return int((p * (Decimal(2) ** kappa)).to_integral_value(rounding="ROUND_FLOOR"))


def _frac(v: float | Fraction) -> Fraction:
    f = Fraction(v)
    if f <= 0:
        raise ParameterError(f"dp: the scale must be > 0, got {v}")
    return f


def _digits_len(t: Fraction, kappa: int) -> int:
    """L with a^(2^L) <= 2^-kappa, a = exp(-1/t): 2^L >= t kappa ln 2."""
    return max(1, math.ceil(math.log2(float(t) * kappa * math.log(2))))


def geometric_digits(scale: float | Fraction, kappa: int = KAPPA, L: int | None = None) -> np.ndarray:
    """Public thresholds P_j = floor(2^kappa a^(2^j) / (1 + a^(2^j))), a = exp(-1/scale),
    for the L binary digits of a geometric variable (default L: a^(2^L) < 2^-kappa)."""
    t = _frac(scale)
    L = _digits_len(t, kappa) if L is None else L
    out = []
    for j in range(L):
        q = _exp_neg(Fraction(2**j) / t)
        with localcontext() as c:
            c.prec = _DIGITS
            out.append(_floor_scaled(q / (1 + q), kappa))
    return np.array(out, dtype=np.int64)


#: the largest cumulative distribution table of one Gaussian sample. The CDT sampler makes
#: T ~ sigma sqrt(2 kappa ln 2) ~ 8.2 sigma comparisons per sample (kappa = 48), so its
#: memory and traffic grow linearly with sigma: beyond this the sampler is refused
#: (NoiseRangeError) instead of exhausting the node's memory (sigma ~ 2000 at the cap)
MAX_GAUSSIAN_TABLE = 1 << 14
#: the most binary digits L of one Laplace sample's geometric part: |X| <= 2^L, so with
#: L <= 62 a noisy count stays inside every comparison's range (|v| < 2^63: the masked
#: opening of a comparison hides v only there, e.g. the fraud jobs' k-suppression of noisy
#: counts) and the digit weights 2^j fit int64. L ~ log2(33 scale): scales up to ~1.4e17
MAX_LAPLACE_DIGITS = 62
#: the most comparisons one job's noise may make in all (`noise_comparisons` summed over its
#: samples): the samplers draw every sample in one batch, and a malicious comparison of
#: kappa + 1 bits costs about 20 KB (Gaussian) to 27 KB (Laplace: its own kappa-bit uniform
#: each) of memory and 0.25 to 0.4 ms of CPU per party (measured, 3 parties in one process:
#: dp_malicious.discrete_gaussian 1,316 -> 21,056 comparisons, max RSS 288 -> 1,444 MB, CPU
#: 6.9 -> 16.2 s; discrete_laplace scale 2, 1,800 -> 9,000, 318 -> 892 MB, 2.1 -> 10.5 s),
#: so without a total an analyst's many groups times a large table exhausted a node. At the
#: cap: up to ~3.5 GB and ~50 s per party; the fraud jobs' 2 x 4096 groups fit with the
#: Laplace mechanism down to epsilon 0.01
MAX_NOISE_COMPARISONS = 1 << 17


class NoiseRangeError(ParameterError):
    """The noise's parameters are beyond what the sampler can draw (a Gaussian sigma whose
    table exceeds MAX_GAUSSIAN_TABLE, a Laplace scale needing more than MAX_LAPLACE_DIGITS
    digits, a non-finite scale, or more than MAX_NOISE_COMPARISONS comparisons in all): use
    the Laplace mechanism, a larger epsilon, smaller bounds or fewer outputs."""


def gaussian_table_len(sigma2: float | Fraction, kappa: int = KAPPA) -> int:
    """T, the number of thresholds (comparisons per sample) of the Gaussian's table (pure)."""
    return math.ceil(math.sqrt(2 * float(_frac(sigma2)) * kappa * math.log(2))) + 2


def noise_comparisons(noise: Noise | list[Noise], samples: int = 1, kappa: int = KAPPA) -> int:
    """The comparisons `add_noise` makes for `noise` (pure): a list is one sample per entry;
    one Noise is `samples` samples. Laplace: (L + 2) per sample, L the largest digit count of
    the batch (`laplace_thresholds`); Gaussian: T(sigma) per sample.
    Raises NoiseRangeError for a non-finite or non-positive scale."""
    ns = [noise] if isinstance(noise, Noise) else list(noise)
    reps = int(samples) if isinstance(noise, Noise) else 1
    for n in ns:
        if not (math.isfinite(n.scale) and n.scale > 0):
            raise NoiseRangeError(f"dp: the noise scale {n.scale!r} cannot be drawn (the bounds or "
                                  "epsilon are out of range)")
    if not ns:
        return 0
    if ns[0].mechanism == "laplace":
        L = max(_digits_len(Fraction(n.scale), kappa) for n in ns)
        return (L + 2) * len(ns) * reps
    return sum(gaussian_table_len(Fraction(n.scale) ** 2, kappa) for n in ns) * reps


def check_noise(noise: Noise | list[Noise], kappa: int = KAPPA, *, samples: int = 1) -> None:
    """NoiseRangeError if a noise cannot be drawn: a Gaussian table beyond
    MAX_GAUSSIAN_TABLE, a Laplace sample of more than MAX_LAPLACE_DIGITS digits, or more
    than MAX_NOISE_COMPARISONS comparisons in all (`noise_comparisons`: a list is one sample
    per entry, one Noise `samples` samples). Cheap, for callers that must refuse before any
    input is made."""
    total = noise_comparisons(noise, samples, kappa)
    for n in [noise] if isinstance(noise, Noise) else noise:
        if n.mechanism == "gaussian":
            T = gaussian_table_len(Fraction(n.scale) ** 2, kappa)
            if T > MAX_GAUSSIAN_TABLE:
                raise NoiseRangeError(
                    f"dp: the gaussian noise of sigma {n.scale:.4g} needs {T} comparisons per "
                    f"sample (at most {MAX_GAUSSIAN_TABLE}); use the laplace mechanism, a larger "
                    f"epsilon or smaller bounds")
        elif _digits_len(Fraction(n.scale), kappa) > MAX_LAPLACE_DIGITS:
            raise NoiseRangeError(
                f"dp: the laplace noise of scale {n.scale:.4g} needs "
                f"{_digits_len(Fraction(n.scale), kappa)} digits (at most {MAX_LAPLACE_DIGITS}: "
                f"|noise| < 2^{MAX_LAPLACE_DIGITS}); use a larger epsilon or smaller bounds")
    if total > MAX_NOISE_COMPARISONS:
        raise NoiseRangeError(f"dp: the noise needs {total} comparisons in all (at most "
                              f"{MAX_NOISE_COMPARISONS}); use fewer outputs (groups, columns), a "
                              f"larger epsilon or the laplace mechanism")


def gaussian_table(sigma2: float | Fraction, kappa: int = KAPPA) -> np.ndarray:
    """Public CDT thresholds C_m = floor(2^kappa Pr[|X| < m]), m = 1..T, for the discrete
    Gaussian of variance parameter sigma2, with Pr[|X| >= T] < 2^-kappa.
    Raises NoiseRangeError if T > MAX_GAUSSIAN_TABLE."""
    s2 = _frac(sigma2)
    T = gaussian_table_len(s2, kappa)
    if T > MAX_GAUSSIAN_TABLE:
        raise NoiseRangeError(f"dp: a gaussian of sigma^2 {float(s2):.4g} needs a table of {T} "
                              f"thresholds (at most {MAX_GAUSSIAN_TABLE})")
    with localcontext() as c:
        c.prec = _DIGITS
        w = [_exp_neg(Fraction(m * m) / (2 * s2)) for m in range(T + 40)]
        Z = w[0] + 2 * sum(w[1:])  # the tail beyond T + 40 is below 10^-60 of Z
        cdf, acc, out = [], w[0] / Z, []
        for m in range(1, T + 1):
            out.append(_floor_scaled(acc, kappa))
            cdf.append(acc)
            acc += 2 * w[m] / Z
    return np.array(out, dtype=np.int64)


def laplace_pmf(x: np.ndarray, scale: float | Fraction) -> np.ndarray:
    """The exact discrete Laplace pmf (float64, for tests and reports)."""
    a = math.exp(-1 / float(scale))
    return (1 - a) / (1 + a) * a ** np.abs(np.asarray(x, dtype=np.float64))


def gaussian_pmf(x: np.ndarray, sigma2: float | Fraction) -> np.ndarray:
    """The exact discrete Gaussian pmf (float64, normaliser summed to 1e-300)."""
    s2 = float(sigma2)
    r = int(math.ceil(math.sqrt(2 * s2 * 700))) + 1
    k = np.arange(-r, r + 1, dtype=np.float64)
    Z = np.exp(-k * k / (2 * s2)).sum()
    xx = np.asarray(x, dtype=np.float64)
    return np.exp(-xx * xx / (2 * s2)) / Z


def tv_bound(count: int, kappa: int = KAPPA) -> float:
    """Statistical distance of one sample from its exact distribution when it uses `count`
    kappa-bit comparisons (each Bernoulli / threshold off by < 2^-kappa), plus the tail."""
    return (count + 1) * 2.0**-kappa


def _bits_for(s: Session, kappa: int) -> int | None:
    return None if not s.domain.is_field else kappa + 1


async def uniform_randoms(s: Session, shape: tuple[int, ...], kappa: int) -> np.ndarray:
    """Shares of U uniform in [0, 2^kappa) (the coins' comparand: its exact uniformity is
    what makes Pr[U < P] = P / 2^kappa). Z_2^64: the preprocessing's `bounded_randoms`
    (uniform for the dealer, the dealer node and ot: sum_i 2^i b_i over daBits). GF(p):
    sum_i 2^i b_i over kappa shared random bits (`bits`), because a field source's
    `bounded_randoms` are only statistical masks: dn07 with PRSS sums C(n, t) uniform
    integers below 2^(kappa - mask_loss), far from uniform on [0, 2^kappa) (its coins came
    out biased, and the noise had 0.4 times its stated standard deviation).
    Preprocessing: Z_2^64 prod(shape) bounded randoms; GF(p) kappa prod(shape) random bits."""
    if not s.domain.is_field:
        return await s.prep.bounded_randoms(shape, kappa)
    D = s.domain
    N = int(np.prod(shape))
    b = await s.prep.bits((kappa, N))
    if not 0 < kappa < 63:
        raise ParameterError(f"dp: kappa must be in [1, 62], got {kappa}")
    w = D.from_int(np.array([1 << i for i in range(kappa)], dtype=np.int64).reshape(kappa, 1))
    u = Share(D.mul(b, np.broadcast_to(w, (kappa, N)).copy()), s).sum(axis=0)
    return u.data.reshape(shape)


async def discrete_laplace(s: Session, shape: tuple[int, ...], scale: Fraction | npt.ArrayLike, *,
                           kappa: int = KAPPA) -> Share:
    """Shares of integers X ~ discrete Laplace(scale), independent, of `shape` (scale: one
    number or Fraction, or one float64 per element: an array of `shape`).

        a = exp(-1/scale),  q = floor(2^kappa a / (1 + a))
        V = [U_0 < q] - [U_0 >= 2^kappa - q]       in {-1, 0, 1}: Pr[V = +-1] = a/(1+a) each
        M = sum_j 2^j [U_j < P_j]  (j = 1..L)      geometric: Pr[M = m] = (1 - a) a^m
        X = V (1 + M)

    Pr[X = 0] = (1-a)/(1+a) and Pr[X = x] = (a/(1+a)) (1-a) a^(|x|-1) = (1-a)/(1+a) a^|x|: the
    discrete Laplace. (Cheaper than G_1 - G_2: L + 2 comparisons instead of 2L.)

    Shapes: returns `shape`.   Rounds: one `ltz` + 1 (the product V (1 + M)): 4 on Z_2^64
    with ltz_tuples.   Bytes: `ltz` on (L + 2) N elements, L = len(geometric_digits(max
    scale, kappa)) (6 for scale 1, 9 for scale 10), and one product of N.
    Preprocessing: (L + 1) N kappa-bit uniform randoms (`uniform_randoms`; one U_0 used
    twice), N triples and the comparisons' material.
    Security: semi-honest, as `ltz`; the noise stays shared.  Raises: ParameterError (scale <= 0,
    a field too small for kappa-bit comparisons), PreprocessingExhausted.
    Reference: CKS 2020 Def. 28; Eriguchi et al. TDSC 2023 Sec. 5 (see the module docstring).
    """
    shape = tuple(shape)
    L, N, thr = laplace_thresholds(shape, scale, kappa)
    U = Share(await uniform_randoms(s, (L + 1, N), kappa), s)
    U_all = Share(np.concatenate([U.data[:1], U.data[:1], U.data[1:]]), s)
    B = await ltz(s, U_all - s.domain.from_int(np.ascontiguousarray(thr)), bits=_bits_for(s, kappa))
    V = B[0] + B[1] - 1  # [U_0 < q] - (1 - [U_0 < 2^kappa - q])
    w = np.array([1 << j for j in range(L)], dtype=np.int64).reshape(L, 1)
    M = Share(s.domain.mul(B.data[2:], s.domain.from_int(np.broadcast_to(w, (L, N)).copy())),
              s).sum(axis=0)
    X = await beaver.mul(s, V, M + 1)
    return X.reshape(shape)


def laplace_thresholds(shape: tuple[int, ...], scale: Fraction | npt.ArrayLike,
                       kappa: int) -> tuple[int, int, np.ndarray]:
    """The public comparands of `discrete_laplace` (pure): (L, N, thr) with thr of shape
    (L + 2, N) for the rows U_0, U_0, U_1..U_L of the uniforms: [U_0 < q], [U_0 < 2^kappa - q]
    (= 1 - [U_0 >= 2^kappa - q]), then the geometric's digits j = 0..L-1 (`geometric_digits`).
    `scale`: one number or Fraction, or one float64 per element of `shape`."""
    N = int(np.prod(shape))
    if isinstance(scale, Fraction) or np.ndim(scale) == 0:  # one scale (a number or a Fraction, used exactly)
        uniq, inv = [_frac(cast(float | Fraction, scale))], np.zeros(N, dtype=np.intp)
    else:  # one per element: float64 values (each used exactly as a binary fraction)
        u, inv = np.unique(np.broadcast_to(np.asarray(scale, dtype=np.float64), shape)
                           .reshape(-1), return_inverse=True)
        uniq = [_frac(float(v)) for v in u]
    L = max((_digits_len(v, kappa) for v in uniq), default=1)
    P = np.stack([geometric_digits(v, kappa, L) for v in uniq], axis=1)[:, inv] if N else \
        np.zeros((L, 0), np.int64)
    q = np.array([_floor_scaled(_coin(v), kappa) for v in uniq], dtype=np.int64)[inv]
    return L, N, np.concatenate([q[None], ((1 << kappa) - q)[None], P])


def _coin(scale: Fraction) -> Decimal:
    """a / (1 + a), a = exp(-1/scale): the probability of each sign of a nonzero sample."""
    a = _exp_neg(1 / scale)
    with localcontext() as c:
        c.prec = _DIGITS
        return a / (1 + a)


async def discrete_gaussian(s: Session, shape: tuple[int, ...], sigma2: float | Fraction, *,
                            kappa: int = KAPPA) -> Share:
    """Shares of integers X ~ discrete Gaussian(sigma2), independent, of `shape`.

        below[m] = [U < C_m] (m = 1..T),  |X| = T - sum_m below[m],  X = |X| - 2 S |X|

    Shapes: returns `shape`.   Rounds: one `ltz` + 1 (the sign product).   Bytes: `ltz` on
    T*N elements (T = len(gaussian_table(sigma2)): 40 for sigma2 = 16) + one product on N.
    Preprocessing: N uniform randoms (`uniform_randoms`), N random bits, N triples and the
    comparisons' material.
    Security: semi-honest, as `ltz`.  Raises: as `discrete_laplace`.
    Reference: CKS 2020 Def. 1; CDT sampling (Peikert 2010); see the module docstring.
    """
    shape = tuple(shape)
    C = gaussian_table(sigma2, kappa)
    full = (len(C), *shape)
    U = Share(await uniform_randoms(s, shape, kappa), s)  # one U per sample, T thresholds
    Ub = Share(np.ascontiguousarray(np.broadcast_to(U.data, full)), s)
    Cb = np.broadcast_to(C.reshape((len(C),) + (1,) * len(shape)), full)
    below = await ltz(s, Ub - s.domain.from_int(np.ascontiguousarray(Cb)),
                      bits=_bits_for(s, kappa))
    mag = -below.sum(axis=0) + s.domain.from_int(np.full(shape, len(C), dtype=np.int64))
    S = Share(await s.prep.bits(shape), s)
    sm = await beaver.mul(s, S, mag)
    return mag - sm - sm


@dataclass(frozen=True)
class Noise:
    """What a release states: mechanism, its parameter and the privacy it buys."""

    mechanism: str  # "laplace" | "gaussian"
    scale: float  # laplace: t; gaussian: sigma (in units of the released integer)
    sensitivity: float  # in units of the released integer
    epsilon: float
    delta: float
    rho: float  # zCDP

    def std(self) -> float:
        if self.mechanism == "laplace":  # 1 - a as -expm1: exact for huge scales (a ~ 1)
            a = math.exp(-1 / self.scale)
            return math.sqrt(2 * a) / -math.expm1(-1 / self.scale)
        return self.scale


def calibrate(mechanism: str, epsilon: float, delta: float, sensitivity: float) -> Noise:
    """The noise for an integer query of the given sensitivity at (epsilon, delta).
    laplace: scale = sensitivity / epsilon (epsilon-DP, CKS Thm. 4 analogue for the discrete
    Laplace). gaussian: rho from eps = rho + 2 sqrt(rho ln(1/delta)) (Bun and Steinke,
    "Concentrated Differential Privacy", TCC 2016, Prop. 1.3), sigma = sensitivity/sqrt(2 rho)."""
    if epsilon <= 0 or sensitivity <= 0:
        raise ParameterError("dp: epsilon and sensitivity must be > 0")
    if mechanism == "laplace":
        return Noise("laplace", sensitivity / epsilon, sensitivity, epsilon, 0.0,
                     epsilon * epsilon / 2)
    if mechanism == "gaussian":
        if not 0 < delta < 1:
            raise ParameterError("dp: the gaussian mechanism needs 0 < delta < 1")
        L = math.log(1 / delta)
        rho = (math.sqrt(L + epsilon) - math.sqrt(L)) ** 2
        return Noise("gaussian", sensitivity / math.sqrt(2 * rho), sensitivity, epsilon, delta,
                     rho)
    raise ParameterError(f"dp: mechanism must be 'laplace' or 'gaussian', got {mechanism!r}")


#: a Gaussian query of sensitivity Delta > COARSE_UNITS is released on the lattice 2^e Z with
#: Delta / 2^e <= COARSE_UNITS (`coarse_exponent`)
COARSE_UNITS = 64


def coarse_exponent(mechanism: str, sensitivity: float) -> int:
    """e, the granularity 2^e (in the query's integer units) at which an integer query is
    released: the smallest e >= 0 with sensitivity / 2^e <= COARSE_UNITS for the Gaussian,
    0 for the Laplace (whose sampler costs O(log scale) comparisons, not O(sigma)). Pure.

    Why: the CDT Gaussian sampler costs T ~ 9.4 sigma comparisons per sample, and a sum of
    fixed-point values has its sensitivity in 2^-16 units (sigma ~ 10^8 for bounds ~1000),
    far past MAX_GAUSSIAN_TABLE. Rounded to 2^e first (`coarse_sensitivity`), the query
    needs sigma in 2^e units only: T ~ 9.4 (COARSE_UNITS + 1) / sqrt(2 rho). The released
    noise is then g sigma_e <= (Delta + 2 g) / sqrt(2 rho) with g = 2^e < 2 Delta /
    COARSE_UNITS: at most 1 + 4 / COARSE_UNITS (6.25 %) above the exact calibration's std, and
    the rounding moves the value by less than one lattice step."""
    if mechanism != "gaussian" or sensitivity <= COARSE_UNITS:
        return 0
    return (math.ceil(sensitivity / COARSE_UNITS) - 1).bit_length()


def coarse_sensitivity(sensitivity: float, e: int) -> float:
    """The sensitivity, in units of 2^e, of trunc(q, e) (stochastic rounding, result floor(q /
    2^e) or that + 1, as truncation.trunc and malicious.fixed.trunc) for a query q of the
    given sensitivity: T(a) - T(b) < (a - b) / 2^e + 2 and is an integer, so |T(a) - T(b)| <=
    ceil(Delta / 2^e) + 1 whatever the rounding coins (a mixture of shifts each within that
    bound: the Laplace bound holds pointwise and the Renyi divergence of the Gaussian is
    quasi-convex, so the calibration for this sensitivity holds for the mixture). Pure."""
    if e == 0:
        return sensitivity
    return float(math.ceil(sensitivity / 2**e) + 1)


@dataclass(frozen=True)
class LaplacePlan:
    """Every entry's Laplace noise in one batch: one scale, or one per entry."""

    scale: float | np.ndarray


def noise_plan(count: int, noise: Noise | list[Noise]) -> LaplacePlan | list[tuple[float, np.ndarray]] | None:
    """How `add_noise` draws the noise of `count` entries (pure; shared by the semi-honest and
    malicious add_noise): None for no entries; LaplacePlan; or, for the Gaussian, one
    (sigma, entry indices) batch per distinct sigma in ascending order (a fixed order: the
    parties must request preprocessing in the same order). ParameterError unless there is
    one Noise per entry, all of one mechanism."""
    ns = [noise] * count if isinstance(noise, Noise) else list(noise)
    if len(ns) != count or len({n.mechanism for n in ns}) > 1:
        raise ParameterError("dp.add_noise: one Noise per entry, all of one mechanism")
    if not ns:
        return None
    if ns[0].mechanism == "laplace":
        sc = {n.scale for n in ns}
        return LaplacePlan(sc.pop() if len(sc) == 1 else np.array([n.scale for n in ns]))
    return [(sigma, np.array([i for i, n in enumerate(ns) if n.scale == sigma]))
            for sigma in sorted({n.scale for n in ns})]


async def add_noise(s: Session, x: Share, noise: Noise | list[Noise], *,
                    kappa: int = KAPPA) -> Share:
    """x + fresh joint noise on every entry (x: shared integers in the units the noise was
    calibrated in); `noise`: one Noise for all entries or a list, one per entry of x
    (flattened), all of one mechanism. The Laplace noise of every entry is drawn in one
    batch (one ltz); Gaussian entries in one batch per distinct sigma, in a fixed order
    (the parties must request preprocessing in the same order: never concurrently)."""
    flat = x.reshape(-1)
    plan = noise_plan(flat.shape[0], noise)
    if plan is None:
        return x
    if isinstance(plan, LaplacePlan):
        z = await discrete_laplace(s, flat.shape, plan.scale, kappa=kappa)
        return x + z.reshape(x.shape)
    out = flat
    for sigma, idx in plan:
        z = await discrete_gaussian(s, (len(idx),), Fraction(sigma) ** 2, kappa=kappa)
        full = s.domain.zeros(flat.shape)
        full[idx] = z.data
        out = out + Share(full, s)
    return out.reshape(x.shape)
