"""The trainers of protocols.apps.ml with malicious security (Session.security ==
"malicious"), on Shamir sharing with an honest majority (t < n/2) or on additive sharing over
Z_2^64 with a dishonest majority (SPDZ2k [CDESX18]).

Both run this one algorithm: every primitive is called through protocols.malicious.backend,
which routes it by the session's scheme to chida18 / fixed / compare / batch (Shamir) or to
spdz2k / spdz2k_fixed / spdz2k_matmul / spdz2k_ml (SPDZ2k: MACed AShares, the batched MAC
check before any output; `refresh_many` is a no-op there, the MAC key never changes; the
range-checked inputs are the bit-masked inputs of spdz2k_ml.input_many, in range by
construction). Below, "MShare" reads "AShare" on SPDZ2k sessions, and "verification" the
MAC check; the round counts quoted are Shamir's. On SPDZ2k an SGD iteration with prepared
masks is 12 rounds (matmul 1 + sigmoid 9: ltz 7, trunc 1, products 1 + matmul 1 + trunc 1;
tests/protocols/test_spdz2k_ml.py); the comparisons' 58 Z_2^128 Beaver products per
element (spdz2k_fixed.ltz) are most of the bytes (benchmarks/README.md, SPDZ2k).
  [CDESX18]   R. Cramer, I. Damgard, D. Escudero, P. Scholl, C. Xing, "SPDZ2k", CRYPTO 2018.

The algorithms are exactly the semi-honest trainers' (protocols.apps.ml.data / sgd / linear:
the same fixed-point encodings, standardisation, batch order, learning rates, piecewise
sigmoid, Newton-Schulz solve and the same truncation points), with every value an MShare of
protocols.malicious.chida18 [CGHIKLN18] and every product, truncation and comparison the
checked one (malicious.mul / matmul / trunc / ltz). The model is released only through
malicious.open / reveal_to, which verify every input, product and opening first: a cheater
in any of them makes every honest party raise CheatingDetectedError
(security.cheating_detected) and nothing is released.

  [CGHIKLN18] K. Chida, D. Genkin, K. Hamada, D. Ikarashi, R. Kikuchi, Y. Lindell, A. Nof,
              "Fast Large-Scale Honest-Majority MPC for Malicious Adversaries", CRYPTO 2018.
  [SecureML]  P. Mohassel, Y. Zhang, IEEE S&P 2017 (mini-batch SGD, piecewise sigmoid).
  [CS10]      O. Catrina, A. Saxena, FC 2010 (probabilistic truncation).

Differences from the semi-honest schedule (results equal the same fixed-point algorithm;
bits differ only where the probabilistic truncation's random rounding does):
- the update w -= trunc(upd) is applied at the end of each iteration (the semi-honest code
  fuses it with the next forward product, a preprocessing kind malicious Shamir lacks);
- truncation and comparison masks are made per epoch by `batch.prepare_batch` (one
  verification, 10 rounds; "offline"), after which the long-lived MShares (X, y, w) are
  re-keyed in one reduction;
- the per-party input shapes are agreed by an echo-checked broadcast (`batch.agree_ints`).
Rounds per SGD iteration with prepared masks: matmul 2 + sigmoid 22 (value check 5, ltz 9,
value check 5, trunc 1, product 2) + matmul 2 + value check 5 + trunc 1 = 32 (squared loss:
16); the value checks (`chida18.check_values`, review5: the products' values are checked
before each masked opening that follows them, 15 of the 32) keep a cheater's product error
from carrying a secret into a masked opening before the verification. The final model's truncations
(`finish`) have their masks prepared in one batch too (`finish_truncs`).
Inputs are range-checked under MPC (issue 16; `input_all`): X and the moments/statistics with
widths derived from f and the sum lengths (`range_bits`, `rows_bits`, `moment_bits`; the
vertical 1/sd with ISTD_EXTRA more fractional bits), 0/1 labels and presence flags as one
unsigned bit; an owner outside its range is named (InputRangeCheatingError, check
"input.range") on every honest party before any masked opening.
Intermediates (issue 16; section "bounded intermediates"): in-range inputs can still push an
intermediate past the truncation / comparison range |x| < 2^(l-1). Horizontal: the mean is
clipped to X's range before mean^2, the variance to [0, 2^NORM_HI) before the Newton
refinement, the standardised rows to +-z_bound(N) (Samuelson); vertical: the standardised
columns are input with the width of +-z_bound(N). The SGD's products and updates are proved
in range from those bounds by `sgd_plan` (public), which clips X (y) once and w after every
update only when the proof fails (large learning rates, unstandardised data at the edge of
its range); the comparisons whose inputs are proven in a smaller range run at that width
(the standardised rows' clip, `_xstd_bits`; the sigmoid, `SgdPlan.z_bits`: shorter masks and
fewer products); `finish` forms w/sd and coef . mu with split operands where the direct product
could leave the range. The closed form (protocols.apps.ml.malicious_linear) clips its moments,
standardised covariances, A, b and the Newton-Schulz iterates (`malicious_linear.solve_plan`).
Not covered (MaliciousUnsupportedError): the smooth sigmoid.
Security: malicious with abort, t < n/2; reveals what the semi-honest trainers reveal (N,
the shapes, the per-party row counts, the label owner, for class_weight="balanced" the
number of positive labels).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protocols.apps.ml._base import decode, encode
from protocols.apps.ml.data import (
    ISTD_EXTRA,
    REFINE_EXTRA,
    _as2d,
    _encode_y,
    local_standardize,
    scaled_input,
)
from protocols.apps.ml.sgd import K_LR, batches, learning_rates, sgd_params
from protocols.arith.domain import Domain
from protocols.arith.fixedpoint import DEFAULT_F
from protocols.errors import ConfigError, MaliciousUnsupportedError, ShapeMismatch
from protocols.malicious import backend as mal
from protocols.malicious.backend import (
    agree_ints,
    bcast,
    clip_many,
    concat,
    const,
    prepare_batch,
    refresh_many,
    stack,
)
from protocols.malicious.chida18 import MShare
from protocols.malicious.nonlinear import (
    fixed_mul,
    inv_sqrt,
    piecewise_sigmoid_raw,
    refine_inv_sqrt,
)
from protocols.nonlinear import NORM_HI
from protocols.session import Session
from protocols.truncation import value_bits

# ------------------------------------------------------------------------ inputs ---
#: an input's declared width: bits (signed), or a function of the agreed shapes (party order)
Bits = int | Callable[[list[tuple[int, ...]]], int] | None


def rows_bits(D: Domain) -> Callable[[list[tuple[int, ...]]], int]:
    """The width for values that enter sums of products over all rows (vertical X^T X, X^T y;
    the SGD's gradient sums over a batch): `range_bits(D, N)` with N the largest row count."""
    return lambda shapes: mal.range_bits(D, max([1] + [sh[0] for sh in shapes if sh]))


def moment_bits(D: Domain, f: int) -> int:
    """The width of a second moment (1/N) sum x x' of f-bit fixed-point values of the default
    width w (|x| <= 2^(w-1)): |x x' / 2^f| <= 2^(2w - 2 - f), plus a sign bit and one of
    slack (48 for f = 16)."""
    return min(2 * (mal.range_bits(D) - 1) - f + 2, value_bits(D))


async def input_all(s: Session, x_local: np.ndarray | None, ndim: int, *, bits: Bits = None,
                    signed: bool = True) -> list[MShare | None]:
    """Every party's own domain array (`ndim` dimensions, shapes may differ; None or size 0 =
    nothing) as MShares, in party order (None for a party with nothing). The shapes are
    agreed first (`agree_ints`, 2 rounds); the inputs then run concurrently and are
    range-checked under MPC (`malicious.input_many`: `bits` signed bits, default
    `range_bits`; a cheating owner is named by InputRangeCheatingError at the next
    verification)."""
    mine = np.zeros(ndim, dtype=np.int64) if x_local is None else np.asarray(x_local.shape, dtype=np.int64)
    if mine.size != ndim:
        raise ShapeMismatch(f"input of {len(mine)} dimensions, expected {ndim}")
    table = await agree_ints(s, mine)
    shapes = [tuple(int(v) for v in table[j]) for j in range(s.n)]
    if any(v < 0 for sh in shapes for v in sh):
        raise ShapeMismatch(f"negative input shape announced: {shapes}")
    owners = {j: shapes[j] for j in range(s.n) if int(np.prod(shapes[j])) > 0}
    if not owners:
        return [None] * s.n
    w = bits(shapes) if callable(bits) else bits
    got = await mal.input_many(s, x_local if s.pid in owners else None, owners, bits=w, signed=signed)
    return [got.get(j) for j in range(s.n)]


async def sum_inputs(s: Session, x_local: np.ndarray, *, bits: Bits = None) -> MShare:
    """The sum of every party's array of one public shape (only the sum is formed)."""
    parts = [p for p in await input_all(s, x_local, x_local.ndim, bits=bits) if p is not None]
    for p in parts:
        if p.shape != x_local.shape:
            raise ShapeMismatch(f"sum_inputs: party inputs differ in shape ({p.shape} vs {x_local.shape})")
    acc = parts[0]
    for p in parts[1:]:
        acc = acc + p
    return acc


async def public_total(s: Session, count: int) -> int:
    """sum of every party's count, opened (verified) to all; the counts stay hidden."""
    tot = await sum_inputs(s, s.public(np.array([int(count)])))
    (v,) = await mal.open(s, tot)
    return int(s.domain.to_signed(v)[0])


# --------------------------------------------------------- bounded intermediates ---
# Every truncation and comparison needs |x| < 2^(l-1) (l = value_bits: 64 on GF(2^127 - 1);
# protocols/malicious/fixed.py, compare.py): beyond it the masked opening c = x + 2^(l-1) + r
# no longer hides x (its top bits show through r) or the result wraps. The inputs are
# range-checked, but in-range inputs (a cheater's, or honest data at the edges of its range)
# can still push an intermediate out. Each intermediate below is either bounded by a proof
# from the checked input widths (a comment "bound:" at the step) or clipped under MPC to a
# declared bound first (`batch.clip_many`, all clips of one step in one call). Every bound
# keeps below LIM = 2^(l-2): one bit of slack for the public constants added before a
# comparison (the sigmoid's +-1/2, the clip's bounds).


def lim(D: Domain) -> float:
    """2^(l-2): the bound every truncated or compared intermediate is kept below."""
    return 2.0 ** (value_bits(D) - 2)


def z_bound(N: int) -> int:
    """A bound (real) on a standardised value (x - mean) / sd over N rows: Samuelson's
    inequality |x_i - mean| <= sd * sqrt(N - 1) (population sd; Samuelson, JASA 1968), plus
    two of slack for the fixed-point mean and 1/sd. An honest standardisation never reaches
    it; the horizontal trainer clips to it, the vertical one declares it as the input width."""
    return math.isqrt(max(int(N) - 1, 0)) + 2


def z_bits(N: int, f: int) -> int:
    """The signed input width of a standardised column of N rows with f bits: |x| <= z_bound(N)."""
    return (z_bound(N) << f).bit_length() + 1


#: bound (real) of 1/sd after the horizontal clip of var to [0, 2^NORM_HI) and
#: `refine_inv_sqrt` (two Newton steps from inv_sqrt's clipped start): at most 16 * 3/2 * 3/2
#: = 36 (var < 2^-8: start 16, v y^2 < 1 then < 2.25), else within 1% of var^-1/2 <= 16
ISTD_MAX = 37


@dataclass(frozen=True)
class SgdPlan:
    """The public bound analysis of one SGD training (`sgd_plan`): clips (encoded, f bits;
    None = not needed, the bound is proved) and the resulting bound on |w| (real)."""

    x_clip: int | None
    y_clip: int | None
    w_clip: int | None
    w_bound: float
    #: the largest bound on |w| before any iteration (real; w_bound is the final one's)
    w_max: float = 0.0
    #: the bound on |X| after x_clip (real)
    x_bound: float = 0.0

    def z_bits(self, D: Domain, f: int, d: int) -> int:
        """The ltz width for the sigmoid's comparisons of z +- 1/2 (z = X w with 2f bits):
        |z| 2^(2f) <= (d x_bound + 1) w_max 2^(2f) (the bound `fits` proves), plus 2^(2f-1),
        below 2^(l-1) (issue 16: a shorter comparison for a proven range; value_bits at most)."""
        zmax = (d * self.x_bound + 1) * self.w_max * 2.0 ** (2 * f) * (1 + 2.0**-20) + 2.0 ** (2 * f - 1)
        return min(int(math.ceil(zmax)).bit_length() + 1, value_bits(D))


def sgd_plan(D: Domain, f: int, *, d: int, x_bound: float, y_bound: float, loss: str,
             sizes: Sequence[int], rates: Sequence[float], cmax: float, l2: float) -> SgdPlan:
    """Which SGD intermediates are provably in range for features |X| <= x_bound and labels
    |y| <= y_bound (real, public), and which must be clipped. Pure.

    Per iteration t (batch B, rate r, q = round(r / B 2^K), K = K_LR), with |w_j| <= W:
      z = X_b w:        |z| 2^(2f) <= (d x_bound + 1) W 2^(2f)         < LIM   (sigmoid ltz, trunc)
      residual p - y:   logistic |p - y| <= 1 (p = clip(., 0, 1) exactly, y a bit);
                        squared  <= (d x_bound + 1) W + y_bound
      upd = g q (+ l2 w): B cmax x_bound R 2^(2f) q + W 2^f round(r l2 2^(f+K)) < LIM (trunc)
      then |w'| <= W |1 - r l2| + (q B / 2^K) cmax x_bound R + 2^-f.
    If the update does not fit even at W = 0, x_bound (and for the squared loss y_bound) is
    halved until it does: X (y) are clipped to it once before the training. If some
    iteration's W breaks a bound, w is clipped after every update to the largest power of
    two W_c for which every iteration fits. Raises ConfigError if no clip makes it fit."""
    L = lim(D)
    K = K_LR
    qs = [int(round(r / B * (1 << K))) for r, B in zip(rates, sizes, strict=True)]
    l2q = [int(np.rint(r * l2 * (1 << (f + K)))) for r in rates]
    ulp = 2.0 ** -f

    def resid(W: float, bx: float, by: float) -> float:
        return 1 + ulp if loss == "logistic" else (d * bx + 1) * W + by + ulp

    def fits(W: float, bx: float, by: float, t: int) -> bool:
        z = (d * bx + 1) * W * 2.0 ** (2 * f)
        upd = sizes[t] * cmax * max(bx, 1.0) * resid(W, bx, by) * 2.0 ** (2 * f) * qs[t] + W * 2.0 ** f * abs(l2q[t])
        return z < L and upd < L

    def step(W: float, bx: float, by: float, t: int) -> float:
        shrink = abs(1 - l2q[t] / 2.0 ** (f + K))
        return W * shrink + qs[t] * sizes[t] / 2.0 ** K * cmax * max(bx, 1.0) * resid(W, bx, by) + ulp

    T = len(sizes)
    bx, by = float(x_bound), float(y_bound)
    x_clip = y_clip = None
    while not all(fits(0.0, bx, by, t) for t in range(T)):
        if loss != "logistic" and by > bx:
            by /= 2
            y_clip = int(by * (1 << f))
        else:
            bx /= 2
            x_clip = int(bx * (1 << f))
        if bx < 1.0 or (loss != "logistic" and by < ulp):
            raise ConfigError("SGD: the learning rate is too large for the fixed-point range "
                              "(the weight update would leave the truncation's range)")
    W = wmax = 0.0
    for t in range(T):
        if not fits(W, bx, by, t):
            break
        W = step(W, bx, by, t)
        wmax = max(wmax, W)
    else:
        return SgdPlan(x_clip, y_clip, None, W, wmax, bx)
    Wc = 2.0 ** (value_bits(D) // 2 - f)
    while not all(fits(Wc, bx, by, t) for t in range(T)):
        Wc /= 2
        if Wc < ulp:
            raise ConfigError("SGD: no bound on the weights keeps the training in the fixed-point range")
    return SgdPlan(x_clip, y_clip, int(Wc * (1 << f)), Wc, Wc, bx)


# --------------------------------------------------------------------- prepared ---
@dataclass
class Prepared:
    X: MShare
    y: MShare
    mu: MShare
    istd: MShare
    istd_f: int
    N: int
    d: int
    ybar: MShare | None = None
    #: public bounds (real) of the prepared values: |X| (features), |y|, |1/sd|, |mu|
    x_bound: float = 0.0
    y_bound: float = 0.0
    istd_bound: float = 1.0
    mu_bound: float = 0.0


def _cat_rows(parts: list[MShare | None]) -> MShare:
    got = [p for p in parts if p is not None]
    if not got:
        raise ConfigError("no party holds any rows")
    return concat(got, 0)


def _xstd_bits(D: Domain, W: int, N: int, f: int) -> int:
    """The ltz width of the horizontal clip of the standardised rows: |X - mu| < 2^W (X
    checked, mu clipped to X's range) times istd < ISTD_MAX 2^g, truncated by g: |Xsh| <=
    ISTD_MAX 2^W + 1; the clip compares Xsh + zb and zb - Xsh (zb = z_bound(N) 2^f)."""
    return min((ISTD_MAX * (1 << W) + 1 + (z_bound(N) << f)).bit_length() + 1, value_bits(D))


async def prepare_horizontal(
    s: Session, X_local: np.ndarray | None, y_local: np.ndarray | None, *, binary: bool, f: int,
    feature_scale: Any = None, standardize: bool = True,
) -> Prepared:
    """data.prepare_horizontal on MShares: N opened, every party's rows input, mu and 1/sd
    from the summed local moments (inv_sqrt + two Newton refinements), standardised rows."""
    X = _as2d(X_local)
    if X is None or y_local is None:
        raise ConfigError("horizontal partition: every party passes its rows X and labels y")
    # saturated to X's checked width: no refusal the analyst's feature_scale can tune
    Xs = scaled_input(X, feature_scale, 2.0 ** (mal.range_bits(s.domain) - 1 - f) - 2.0**-f)
    y = np.asarray(y_local).reshape(-1)
    if len(y) != len(X):
        raise ShapeMismatch(f"X has {len(X)} rows, y has {len(y)}")
    N = await public_total(s, len(X))
    d = X.shape[1]
    g = f + REFINE_EXTRA
    xs = await input_all(s.child("x"), encode(s, Xs, f), 2)
    ys = await input_all(s.child("y"), _encode_y(s, y, binary, f), 1, bits=1 if binary else None,
                         signed=not binary)
    for p in xs:
        if p is not None and p.shape[1] != d:
            raise ShapeMismatch(f"horizontal partition: parties disagree on the features ({p.shape})")
    Xsh, ysh = _cat_rows(xs), _cat_rows(ys)
    D = s.domain
    W = mal.range_bits(D)  # X's checked width: |X| < 2^(W-1) encoded
    xmax = 2.0 ** (W - 1 - f)
    ymax = 1.0 if binary else xmax
    if not standardize:
        mu = await const(s, 0, (d,))
        istd = mu + (1 << g)
        return Prepared(Xsh, ysh, mu, istd, g, N, d, x_bound=xmax, y_bound=ymax, mu_bound=0.0)
    local = np.concatenate([Xs.sum(0) / N, (Xs * Xs).sum(0) / N])
    tot = await sum_inputs(s.child("st"), encode(s, local, f), bits=moment_bits(D, f))
    # masks for the statistics, the standardisation and the three clips (2 comparisons per
    # clipped element), under one verification (which also settles every input's range
    # check, so no masked opening needs one of its own)
    # the standardised rows' clip at the width their bound proves (issue 16: shorter comparisons)
    xbits = _xstd_bits(D, W, N, f)
    await prepare_batch(s, {f: 3 * d, 20: d, 24: 12 * d + N * d, 25: 2 * d, 36: d}, 25 * d + 2 * 2 * d,
                        ltz_bits={xbits: 2 * N * d})
    (tot,) = await refresh_many(s, tot)
    mu, ex2 = tot[:d], tot[d:]
    # clip: mu is a sum of the parties' moment inputs (|.| < 3 * 2^(moment_bits - 1), not tied
    # to the rows: mu * mu could reach 2^99); the mean of rows |X| < 2^(W-1) lies in that range
    (mu,) = await clip_many(s, [(mu, -(1 << (W - 1)), (1 << (W - 1)) - 1)])
    # bound: |mu * mu| < 2^(2W - 2) = 2^62 (trunc)
    (ex2,) = await refresh_many(s, ex2)
    var = ex2 - await fixed_mul(s, mu, mu, f)
    # clip: var (|var| < 2^50, ltz's range) to [0, 2^NORM_HI): inv_sqrt clips its input to
    # [2^-8, 2^NORM_HI) anyway, and beyond it (or for var < 0, a cheater's moments) the Newton
    # refinement diverges (v y^2 up to 2^80 encoded). Honest data with var >= 2^NORM_HI is
    # outside the algorithm's range as before (scale it: feature_scale).
    (var,) = await clip_many(s, [(var, 0, (1 << (NORM_HI + f)) - 1)])
    y0 = await inv_sqrt(s, var, f)
    var, y0 = await refresh_many(s, var, y0)
    # bound (refine, g = f + REFINE_EXTRA bits): y0 = inv_sqrt(var) within 2e-5 var^-1/2 +
    # 2^-f of var^-1/2 on [2^-8, 2^16) (16 below): v y^2 <= 2.25 throughout (see ISTD_MAX),
    # so |v y2| < 2^(f + g + 2), |y y| < (37 * 2^g)^2 < 2^59, |y (3 - t)| < 2^55
    istd = await refine_inv_sqrt(s, var, y0, f, REFINE_EXTRA)
    Xsh, ysh, mu, istd = await refresh_many(s, Xsh, ysh, mu, istd)
    # bound: |X - mu| < 2^W, istd < ISTD_MAX 2^g: the product < 2^(W + 5.3 + g) = 2^61.3
    Xsh = await fixed_mul(s, Xsh - bcast(mu, Xsh.shape), bcast(istd, Xsh.shape), g)
    # clip: the standardised rows to +-z_bound(N) (Samuelson: an honest row is inside; with a
    # cheater's moments |X - mu| istd reaches 2^21: the SGD's products would leave the range)
    zb = z_bound(N) << f
    # bound: |Xsh - -zb|, |zb - Xsh| <= ISTD_MAX 2^W + 1 + zb < 2^(xbits - 1): a shorter ltz
    # (39 bits for the bench's data; both backends: Shamir's compare.ltz, SPDZ2k's ltz_bits)
    (Xsh,) = await clip_many(s, [(Xsh, -zb, zb)], bits=xbits)
    ysh, mu, istd = await refresh_many(s, ysh, mu, istd)
    return Prepared(Xsh, ysh, mu, istd, g, N, d, x_bound=float(z_bound(N)), y_bound=ymax,
                    istd_bound=float(ISTD_MAX), mu_bound=xmax)


async def prepare_vertical(
    s: Session, X_local: np.ndarray | None, y_local: np.ndarray | None, *, binary: bool, f: int,
    center_y: bool = False, standardize: bool = True,
) -> Prepared:
    """data.prepare_vertical on MShares: each column's owner standardises it locally and
    inputs it with its mean and 1/sd; the label owner is found by one opened presence bit
    per party."""
    X = _as2d(X_local)
    if X is None:
        X = np.zeros((0, 0))
    flags = [p for p in await input_all(s.child("own"), s.public(np.array([int(y_local is not None)])), 1,
                                        bits=1, signed=False)]
    opened = await mal.open(s, *[p for p in flags if p is not None])
    owners = [j for j, v in enumerate(opened) if int(s.domain.to_signed(v)[0]) == 1]
    if len(owners) != 1:
        raise ConfigError(f"vertical partition: exactly one party must hold y, got {owners}")
    owner = owners[0]
    Xstd, mu, istd = local_standardize(X, standardize)
    ybar_v, yv = 0.0, None
    if y_local is not None:
        yy = np.asarray(y_local, dtype=np.float64).reshape(-1)
        if center_y:
            ybar_v = float(yy.mean())
            yy = yy - ybar_v
        yv = _encode_y(s, yy, binary, f)
    D = s.domain
    # the standardised columns are declared within +-z_bound(N) (Samuelson: an exact local
    # standardisation always is); this input width is what bounds the SGD's products
    xbits = (lambda sh: min(z_bits(max([1] + [v[0] for v in sh if v]), f), rows_bits(D)(sh))) if standardize \
        else rows_bits(D)
    xs = await input_all(s.child("x"), encode(s, Xstd, f) if X.shape[1] else None, 2, bits=xbits)
    st = await input_all(s.child("m"), np.concatenate([encode(s, mu, f), encode(s, istd, f + ISTD_EXTRA)])
                         if X.shape[1] else None, 1, bits=mal.range_bits(D) + ISTD_EXTRA)
    ysh = await input_all(s.child("y"), yv if s.pid == owner else None, 1,
                          bits=1 if binary else rows_bits(D), signed=not binary)
    ybar = await input_all(s.child("b"), encode(s, np.array([ybar_v]), f) if s.pid == owner else None, 1)
    cols = [p for p in xs if p is not None]
    if not cols:
        raise ConfigError("vertical partition: no party holds any feature")
    y_m, yb_m = ysh[owner], ybar[owner]
    if y_m is None or yb_m is None:
        raise ConfigError("vertical partition: the label owner passed no labels")
    rows = {p.shape[0] for p in cols} | {y_m.shape[0]}
    if len(rows) != 1:
        raise ShapeMismatch(f"vertical partition: parties hold different row counts {sorted(rows)}")
    Xsh = concat(cols, 1)
    stats = [p for p in st if p is not None]
    mus = concat([p[: p.shape[0] // 2] for p in stats], 0)
    istds = concat([p[p.shape[0] // 2 :] for p in stats], 0)
    Nr = Xsh.shape[0]
    rw = rows_bits(D)([(Nr,)])
    # the bound a cheater can reach is the checked width's, 2^(bits - 1) encoded (>= z_bound)
    xb = 2.0 ** ((min(z_bits(Nr, f), rw) if standardize else rw) - 1 - f)
    # mu and 1/sd share one input of width range_bits + ISTD_EXTRA (1/sd with ISTD_EXTRA more
    # fractional bits): |1/sd| < 2^(range_bits - 1 - f), |mu| < 2^(range_bits + ISTD_EXTRA - 1 - f)
    sb = mal.range_bits(D) - 1 - f
    return Prepared(Xsh, y_m, mus, istds, f + ISTD_EXTRA, Nr, Xsh.shape[1], yb_m.reshape(()),
                    x_bound=xb, y_bound=1.0 if binary else 2.0 ** (rw - 1 - f),
                    istd_bound=2.0 ** sb, mu_bound=2.0 ** (sb + ISTD_EXTRA))


# -------------------------------------------------------------------------- SGD ---
def sgd_schedule_plan(s: Session, N: int, d: int, *, loss: str, y_is_bits: bool, batch_size: int, epochs: int,
                      lr: float, schedule: str = "constant", lr_decay: float = 0.0, l2: float = 0.0,
                      class_weight: tuple[float, float] = (1.0, 1.0), shuffle_seed: int | None = 0,
                      f: int = DEFAULT_F, x_bound: float | None = None, y_bound: float | None = None,
                      **_: Any) -> SgdPlan:
    """`sgd_plan` for the public schedule of `sgd` (the same arguments). Pure."""
    D = s.domain
    top = 2.0 ** (mal.range_bits(D) - 1 - f)
    sched = batches(N, batch_size, epochs, shuffle_seed)
    rates = learning_rates(lr, schedule, len(sched), epochs, lr_decay)
    c0, c1 = class_weight
    cmax = max(abs(int(round(c0 * (1 << f)))), abs(int(round(c1 * (1 << f))))) / (1 << f) + 2.0 ** -f \
        if (c0, c1) != (1.0, 1.0) else 1.0
    return sgd_plan(D, f, d=d, x_bound=top if x_bound is None else x_bound,
                    y_bound=(1.0 if y_is_bits else top) if y_bound is None else y_bound, loss=loss,
                    sizes=[len(i) for i in sched], rates=rates, cmax=cmax, l2=l2)


async def sgd(
    s: Session, X: MShare, y: MShare, *, loss: str, y_is_bits: bool, batch_size: int, epochs: int,
    lr: float, schedule: str = "constant", lr_decay: float = 0.0, l2: float = 0.0,
    class_weight: tuple[float, float] = (1.0, 1.0), sigmoid: str = "piecewise",
    shuffle_seed: int | None = 0, f: int = DEFAULT_F, x_bound: float | None = None,
    y_bound: float | None = None,
) -> MShare:
    """protocols.apps.ml.sgd.sgd on MShares (module docstring): w (d + 1) with f bits.
    x_bound / y_bound: public bounds (real) of |X| and |y| (default: the checked input range);
    `sgd_plan` proves every product, truncation and comparison in range from them, or
    clips X / y once and w after every update (only when the proof fails: the `SgdPlan`)."""
    if loss not in ("squared", "logistic"):
        raise ConfigError(f"unknown loss {loss!r}")
    if sigmoid != "piecewise":
        raise MaliciousUnsupportedError("malicious training has the piecewise sigmoid only (sigmoid='piecewise')")
    N, d = X.shape
    plan = sgd_schedule_plan(s, N, d, loss=loss, y_is_bits=y_is_bits, batch_size=batch_size, epochs=epochs,
                             lr=lr, schedule=schedule, lr_decay=lr_decay, l2=l2, class_weight=class_weight,
                             shuffle_seed=shuffle_seed, f=f, x_bound=x_bound, y_bound=y_bound)
    if plan.x_clip is not None or plan.y_clip is not None:  # once, before the training
        items = [] if plan.x_clip is None else [(X, -plan.x_clip, plan.x_clip)]
        items += [] if plan.y_clip is None else [(y, -plan.y_clip, plan.y_clip)]
        got = await clip_many(s, items)
        X = got[0] if plan.x_clip is not None else X
        y = got[-1] if plan.y_clip is not None else y
    zbits = plan.z_bits(s.domain, f, d)
    ones = await const(s, 1 << f, (N, 1))
    (X,) = await refresh_many(s, X)
    Xa = concat([X, ones], 1)
    (y,) = await refresh_many(s, y)
    yf = y * (1 << f) if y_is_bits else y
    c0, c1 = class_weight
    if (c0, c1) != (1.0, 1.0):
        if not y_is_bits:
            raise ConfigError("class weights apply to 0/1 labels")
        wt = y * int(round((c1 - c0) * (1 << f))) + int(round(c0 * (1 << f)))
        Xg = await fixed_mul(s, Xa, bcast(wt.reshape(N, 1), Xa.shape), f)
    else:
        Xg = Xa
    sched = batches(N, batch_size, epochs, shuffle_seed)
    rates = learning_rates(lr, schedule, len(sched), epochs, lr_decay)
    per = len(sched) // epochs
    l2mask = np.ones(d + 1)
    l2mask[d] = 0.0
    w = await const(s, 0, (d + 1,))
    for e in range(epochs):
        part = sched[e * per : (e + 1) * per] if e < epochs - 1 else sched[e * per :]
        rows = sum(len(i) for i in part)
        wclips = 0 if plan.w_clip is None else 2 * (d + 1) * len(part)
        # the sigmoid's comparisons at the width the plan proves for z (shorter than 64 bits)
        await prepare_batch(s, {f: rows, f + K_LR: len(part) * (d + 1)}, wclips,
                            ltz_bits={zbits: 2 * rows} if loss == "logistic" else None)
        Xa, Xg, yf, w = await refresh_many(s, Xa, Xg, yf, w)
        XgT = Xg.T
        for idx, rate in zip(part, rates[e * per : e * per + len(part)], strict=True):
            B = len(idx)
            z_raw = await mal.matmul(s, Xa[idx], w)
            if loss == "logistic":
                # bound: |z_raw| <= (d x_bound + 1) w_max 2^(2f) (sgd_plan), so |z +- 1/2| < 2^(zbits-1)
                p = await piecewise_sigmoid_raw(s, z_raw, f, bits=zbits)
            else:
                p = await mal.trunc(s, z_raw, f)
            yb, p = await refresh_many(s, yf[idx], p)
            g = await mal.matmul(s, XgT[:, idx], p - yb)
            upd = g * int(round(rate / B * (1 << K_LR)))
            if l2:
                (w,) = await refresh_many(s, w)
                upd = upd + w * np.rint(rate * l2 * l2mask * (1 << (f + K_LR))).astype(np.int64)
            step = await mal.trunc(s, upd, f + K_LR)
            w, step = await refresh_many(s, w, step)
            w = w - step
            if plan.w_clip is not None:  # only when sgd_plan cannot bound the iterates
                (w,) = await clip_many(s, [(w, -plan.w_clip, plan.w_clip)])
            Xa, Xg, yf = await refresh_many(s, Xa, Xg, yf)  # no-ops unless masks ran out
            XgT = Xg.T
    return w


def finish_truncs(istd_f: int, f: int, d: int, feature_scale: Any = None) -> dict[int, int]:
    """{f: count} of the truncations `finish` makes, for `prepare_batch`."""
    t = {istd_f: d}
    t[f] = t.get(f, 0) + 1
    if feature_scale is not None:
        t[f + 20] = t.get(f + 20, 0) + d
    return t


async def finish(s: Session, w: MShare, mu: MShare, istd: MShare, istd_f: int, w0: MShare, f: int,
                 feature_scale: Any = None, *, bounds: tuple[float, float, float] | None = None
                 ) -> tuple[MShare, MShare]:
    """linear.finish on MShares: coef = w / sd (/ scale), intercept = w0 - coef . mu.

    bounds = (|w|, |1/sd|, |mu|) (real, public: the SGD plan's and the preparation's). With
    them every truncation is kept in range (module section "bounded intermediates"):
      cs = w istd / 2^istd_f directly if W I 2^(f + istd_f) < LIM, else with istd split at f
           bits: istd = hi 2^k + lo (hi = trunc(istd, k), |lo| <= 2^k, k = istd_f - f):
           cs = trunc(w hi, f) + trunc(w lo, istd_f)   (needs W I 2^(2f) < LIM);
      shift = cs . mu / 2^f directly if d C M 2^(2f) < LIM (C = W I), else with mu split:
           mu = mu_hi 2^f + mu_lo: shift = cs . mu_hi (an integer product: no truncation)
           + trunc(cs . mu_lo, f)                    (needs d C 2^(2f) < LIM);
      coef = trunc(cs C_scale, f + 20)               (needs C 2^f max C_scale < LIM).
    If W is too large for the split forms too, w is clipped to the largest power of two that
    fits first (a declared bound on the model). Without bounds the products are formed
    directly (range unchecked; every trainer passes bounds: the SGD plan's, the closed form's
    `solve_plan`)."""
    if bounds is None:
        cs = await mal.trunc(s, await mal.mul(s, w, istd), istd_f)
        (cs,) = await refresh_many(s, cs)
        shift = await mal.trunc(s, (await mal.mul(s, cs, mu)).sum().reshape(1), f)
    else:
        cs, shift = await _bounded_coef(s, w, mu, istd, istd_f, f, feature_scale, bounds)
    w0, shift, cs = await refresh_many(s, w0, shift, cs)
    intercept = (w0.reshape(1) - shift).reshape(())
    coef = cs
    if feature_scale is not None:
        C = np.rint(np.broadcast_to(1.0 / np.asarray(feature_scale, dtype=np.float64), cs.shape) * (1 << (f + 20)))
        coef = await mal.trunc(s, cs * C.astype(np.int64), f + 20)
        coef, intercept = await refresh_many(s, coef, intercept)
    return coef, intercept


async def _bounded_coef(s: Session, w: MShare, mu: MShare, istd: MShare, istd_f: int, f: int,
                        feature_scale: Any, bounds: tuple[float, float, float]) -> tuple[MShare, MShare]:
    """cs = w istd / 2^istd_f and shift = cs . mu / 2^f with every truncation in range (`finish`)."""
    L = lim(s.domain)
    W, Ib, M = (float(b) for b in bounds)
    d = w.shape[0]
    k = istd_f - f
    maxc = 0.0
    if feature_scale is not None:
        maxc = float(np.max(np.abs(1.0 / np.asarray(feature_scale, dtype=np.float64)))) * 2.0 ** (f + 20)
    ulp = 2.0 ** -f

    def fit(W: float) -> bool:
        C = W * Ib + ulp
        ok = W * Ib * 2.0 ** (f + istd_f) < L or (k > 0 and W * Ib * 2.0 ** (2 * f) < L)
        ok = ok and (d * C * M * 2.0 ** (2 * f) < L or d * C * 2.0 ** (2 * f) < L)
        return ok and (C * 2.0 ** f * maxc < L)

    if not fit(W):  # clip w to a declared bound (the model's range)
        Wc = 2.0 ** (value_bits(s.domain) // 2 - f)
        while not fit(Wc):
            Wc /= 2
            if Wc < ulp:
                raise ConfigError("finish: no bound on the weights keeps the coefficients in range")
        (w,) = await clip_many(s, [(w, -int(Wc * (1 << f)), int(Wc * (1 << f)))])
        W = Wc
    C = W * Ib + ulp
    direct_cs = W * Ib * 2.0 ** (f + istd_f) < L
    direct_shift = d * C * M * 2.0 ** (2 * f) < L
    # the split forms' truncations (5 with the un-scaling's) share one mask preparation (a
    # verification, ~30 rounds); the direct forms' two or three are cheaper made inline (13)
    calls = [(istd_f, d)] if direct_cs else [(k, d), (f, d), (istd_f, d)]
    calls += [(f, 1)] if direct_shift else [(f, d), (f, 1)]
    calls += [(f + 20, d)] if feature_scale is not None else []
    if len(calls) > 3:
        need: dict[int, int] = {}
        for kk, cnt in calls:
            need[kk] = need.get(kk, 0) + cnt
        await prepare_batch(s, {kk: max(0, cnt - mal.prepared_trunc(s, kk)) for kk, cnt in need.items()})
    w, istd = await refresh_many(s, w, istd)
    if direct_cs:
        # bound: |w istd| < W Ib 2^(f + istd_f) < LIM
        cs = await mal.trunc(s, await mal.mul(s, w, istd), istd_f)
    else:  # split istd: |w hi| < W Ib 2^(2f), |w lo| <= W 2^(f + k) (both < LIM)
        hi = await mal.trunc(s, istd, k)
        istd, hi, w = await refresh_many(s, istd, hi, w)
        lo = istd - hi * (1 << k)
        P = await mal.mul(s, stack([w, w]), stack([hi, lo]))
        t1 = await mal.trunc(s, P[0], f)
        (P,) = await refresh_many(s, P)
        t2 = await mal.trunc(s, P[1], istd_f)
        t1, t2 = await refresh_many(s, t1, t2)
        cs = t1 + t2
    cs, mu = await refresh_many(s, cs, mu)
    if direct_shift:
        # bound: |cs . mu| <= d C M 2^(2f) < LIM
        shift = await mal.trunc(s, (await mal.mul(s, cs, mu)).sum().reshape(1), f)
    else:  # split mu: mu_hi integer-valued (no truncation of cs . mu_hi), |cs . mu_lo| < d C 2^(2f)
        mh = await mal.trunc(s, mu, f)
        mu, mh, cs = await refresh_many(s, mu, mh, cs)
        mlo = mu - mh * (1 << f)
        P = await mal.mul(s, stack([cs, cs]), stack([mh, mlo]))
        t2 = await mal.trunc(s, P[1].sum().reshape(1), f)
        (P,) = await refresh_many(s, P)
        t1 = P[0].sum().reshape(1)
        t1, t2 = await refresh_many(s, t1, t2)
        shift = t1 + t2
    return cs, shift


# ------------------------------------------------------------------------ model ---
@dataclass
class MSharedModel:
    """A fitted model as MShares: released only through the verified openings."""

    model: str
    coef: MShare
    intercept: MShare
    n_features: int
    f: int = DEFAULT_F
    info: dict[str, Any] = field(default_factory=dict)

    def _unpack(self, s: Session, v: np.ndarray) -> tuple[np.ndarray, float]:
        vals = decode(s, v, self.f)
        return vals[:-1], float(vals[-1])

    async def _packed(self, s: Session) -> MShare:
        coef, b = await refresh_many(s, self.coef, self.intercept)
        return concat([coef, b.reshape(1)])

    async def reveal_to(self, s: Session, party: int) -> tuple[np.ndarray, float] | None:
        """(coef, intercept) at `party` after the verification, None elsewhere."""
        v = await mal.reveal_to(s, await self._packed(s), party)
        return None if v is None else self._unpack(s, v)

    async def reveal(self, s: Session) -> tuple[np.ndarray, float]:
        """(coef, intercept) at every party after the verification."""
        (v,) = await mal.open(s, await self._packed(s))
        return self._unpack(s, v)


async def fit_sgd(s: Session, model: str, X_local: np.ndarray | None, y_local: np.ndarray | None,
                  partition: str, f: int, alpha: float, hp: dict[str, Any]) -> MSharedModel:
    """protocols.apps.ml._fit_sgd with malicious security."""
    binary = model == "logistic"
    standardize = bool(hp.get("standardize", True))
    if partition == "horizontal":
        P = await prepare_horizontal(s, X_local, y_local, binary=binary, f=f,
                                     feature_scale=hp.get("feature_scale"), standardize=standardize)
        scale = hp.get("feature_scale")
    else:
        P = await prepare_vertical(s, X_local, y_local, binary=binary, f=f, standardize=standardize)
        scale = None
    n_pos = None
    if binary and hp.get("class_weight") == "balanced":
        (tot,) = await mal.open(s, P.y.sum().reshape(1))
        n_pos = int(s.domain.to_signed(tot)[0])
    params = sgd_params(hp, binary=binary, alpha=alpha, N=P.N, n_pos=n_pos, f=f)
    params.update(x_bound=P.x_bound, y_bound=P.y_bound)
    plan = sgd_schedule_plan(s, P.N, P.d, **params)
    w = await sgd(s, P.X, P.y, **params)
    d = P.d
    await prepare_batch(s, finish_truncs(P.istd_f, f, d, scale))  # else `trunc` makes them inline
    w, mu, istd = await refresh_many(s, w, P.mu, P.istd)
    coef, intercept = await finish(s, w[:d], mu, istd, P.istd_f, w[d], f, scale,
                                   bounds=(plan.w_bound, P.istd_bound, P.mu_bound))
    info = {"n_samples": P.N, "partition": partition, "solver": "sgd", "security": "malicious", **hp}
    return MSharedModel(model, coef, intercept, d, f, info=info)


__all__ = ["MSharedModel", "fit_sgd", "input_all", "prepare_horizontal", "prepare_vertical", "public_total", "sgd"]
