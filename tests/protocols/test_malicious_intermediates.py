"""Issue 16: the INTERMEDIATES of the malicious Shamir trainers stay inside the range that the
probabilistic truncation and the masked comparison need (|x| < 2^(l-1), l = 64 on
GF(2^127 - 1); protocols/malicious/fixed.py, compare.py). Outside it the masked opening
c = x + 2^(l-1) + r no longer hides x (its top bits show through the mask) or wraps.

A range monitor wraps every malicious truncation and comparison and reconstructs its input
(from the two honest parties' shares, test-side only). Each test drives one intermediate out
of range with in-range inputs -- a cheating party's moments or columns, or honest data at the
extremes of its declared range -- and asserts that every truncated / compared value stays
below 2^63 (so: the masked openings hide their values). On main each of these saw values of
2^66 .. 2^99 (checked); with the clips / declared widths of protocols.apps.ml.malicious they
are bounded (the closed form too, since mlin: its moments, A, b and the Newton-Schulz iterates)."""

from __future__ import annotations

import numpy as np
import pytest
from malicious_helpers import run, skip_own_range_check

from mpc.bench.e2e import logistic_data
from protocols.apps.ml import malicious as mlmal
from protocols.apps.ml import malicious_linear as mllin
from protocols.apps.ml import train
from protocols.errors import CheatingDetectedError
from protocols.sharing.shamir import lagrange_coefficients

pytestmark = pytest.mark.timeout(600)

F = 16
LX, LY = logistic_data(60, 3)
RX = LX @ [1.5, -0.5, 2.0] + 0.3
TOP = 1 << 63  # |x| < 2^(l-1), l = 64


class Monitor:
    """Records the input of every malicious trunc / ltz / eqz at every party; `max_abs`
    reconstructs them from parties 0 and 1 (t + 1 = 2 shares) and returns the largest |x|."""

    def __init__(self, monkeypatch):
        from protocols import malicious as mal
        from protocols.malicious import compare, fixed, nonlinear

        self.rec: dict[int, list[tuple[str, np.ndarray]]] = {0: [], 1: [], 2: []}
        self.xs = None
        self.D = None
        for name, mods in (("trunc", (fixed, mal, nonlinear)), ("ltz", (compare, mal, nonlinear)),
                           ("eqz", (compare, mal))):
            real = getattr(fixed if name == "trunc" else compare, name)

            def wrap(real=real, name=name):
                async def f(s, x, *a, **kw):
                    self.xs, self.D = s.scheme.xs, s.domain
                    # the comparison's declared width (malperf2: shorter ltz for proven ranges)
                    lim = 1 << ((kw.get("bits") or 64) - 1) if name != "trunc" else TOP
                    self.rec[s.pid].append((name, x.x.data.copy(), lim))
                    return await real(s, x, *a, **kw)
                return f

            w = wrap()
            for m in mods:
                monkeypatch.setattr(m, name, w)

    def values(self):
        D = self.D
        p = D.modulus
        l0, l1 = lagrange_coefficients(p, (self.xs[0], self.xs[1]), 0)
        out = []
        for (n0, a, lim), (n1, b, _) in zip(self.rec[0], self.rec[1], strict=False):
            assert n0 == n1
            v = (D.to_int(a).reshape(-1) * l0 + D.to_int(b).reshape(-1) * l1) % p
            out.append((n0, np.where(v > p // 2, v - p, v), lim))
        return out

    def max_abs(self) -> int:
        if self.D is None:
            return 0
        return max((int(max(abs(int(x)) for x in v)) for _, v, _ in self.values() if v.size), default=0)

    def over_width(self) -> list[tuple[str, int, int]]:
        """(name, max |x|, limit) of every call whose input reached its declared width
        (a comparison with `bits` = l needs |x| < 2^(l-1))."""
        if self.D is None:
            return []
        out = []
        for n, v, lim in self.values():
            m = max((abs(int(x)) for x in v), default=0)
            if m >= lim:
                out.append((n, m, lim))
        return out


def _poison(monkeypatch, module, name, shape, value_fn):
    """At party 2 (the cheater), the encoder `module.name` returns value_fn(s, out) for arrays of
    `shape` (its own, in-range, input)."""
    real = getattr(module, name)

    def enc(s, *a, **kw):
        out = real(s, *a, **kw)
        if s.pid == 2 and out.shape == shape:
            out = value_fn(s, out)
        return out

    monkeypatch.setattr(module, name, enc)


def _horizontal(model="logistic", X=None, **kw):
    async def job(s):
        idx = np.arange(60)[s.pid::3]
        Xl = (LX if X is None else X)[idx]
        y = LY[idx] if model == "logistic" else RX[idx]
        m = await train(s, model, Xl, y, partition="horizontal", **kw)
        return await m.reveal(s)
    return job


def _vertical(model="logistic", **kw):
    async def job(s):
        y = (LY if model == "logistic" else RX) if s.pid == 0 else None
        m = await train(s, model, LX[:, s.pid : s.pid + 1], y, partition="vertical", **kw)
        return await m.reveal(s)
    return job


SGD = {"epochs": 1, "batch_size": 20}
BIG_W = {"epochs": 3, "batch_size": 20, "lr": 16.0}  # weights of a few units


def _honest_moments():
    """The honest parties' (0, 1) summed moment inputs (mean and E[x^2] parts, f bits)."""
    tot = np.zeros(6)
    for p in (0, 1):
        x = LX[np.arange(60)[p::3]]
        tot += np.concatenate([x.sum(0) / 60, (x * x).sum(0) / 60])
    return tot


def _moments(mean, var=None, ex2=None):
    """The cheater's moment input making the summed mean `mean` and var `var` (per feature),
    or its own E[x^2] part `ex2`."""
    h = _honest_moments()
    m = np.full(3, float(mean)) - h[:3]
    e = np.full(3, float(ex2)) if var is None else np.full(3, float(var) + float(mean) ** 2) - h[3:]

    def fn(s, out):
        return s.domain.from_int(np.rint(np.concatenate([m, e]) * 2**F).astype(object))
    return fn


def _bounded(mon, res, errs):
    assert errs == [None] * 3, errs
    assert mon.max_abs() < TOP, hex(mon.max_abs())
    assert mon.over_width() == []  # and below each shorter comparison's 2^(bits-1)
    return res


# ------------------------------------------------------------- horizontal prepare ---
def test_horizontal_mean_bounded(monkeypatch):
    """The cheater's moments make mu = 2^30 (its 48-bit moment input is in range): mu * mu
    would be 2^92 encoded at the truncation. Clipped to X's range first (var is then clipped
    to 0)."""
    mon = Monitor(monkeypatch)
    _poison(monkeypatch, mlmal, "encode", (6,), _moments(2.0**30, ex2=0.0))
    _bounded(mon, *run(_horizontal(**SGD))[:2])


def test_horizontal_variance_bounded(monkeypatch):
    """The cheater's moments make var = -2^30 (E[x^2] below mean^2): inv_sqrt clips it to
    2^-8, and the Newton refinement's v y^2 reaches 2^80 encoded. var is clipped to
    [0, 2^16) first."""
    mon = Monitor(monkeypatch)
    _poison(monkeypatch, mlmal, "encode", (6,), _moments(0.0, -(2.0**30)))
    _bounded(mon, *run(_horizontal(**SGD))[:2])


def test_horizontal_standardised_rows_bounded(monkeypatch):
    """The cheater's moments make mu = -2^14 and var = 2^-10 (both legal): every honest row
    standardises to about 2^14 * 36 = 2^19, and the SGD's first update overflows (r X 2^52).
    The standardised rows are clipped to +-z_bound(N) (Samuelson)."""
    mon = Monitor(monkeypatch)
    _poison(monkeypatch, mlmal, "encode", (6,), _moments(-(2.0**14), 2.0**-10))
    _bounded(mon, *run(_horizontal(**SGD))[:2])


# --------------------------------------------------------------------------- SGD ---
def test_sgd_unstandardised_extreme_rows_bounded(monkeypatch):
    """HONEST data at the edge of its declared range (|x| = 2^15 - 1, not standardised): the
    logistic SGD's update g * r 2^20 reaches 2^66. X is clipped (once) to the plan's bound."""
    mon = Monitor(monkeypatch)
    X = LX.copy()
    X[::7, 0] = 2.0**15 - 1
    _bounded(mon, *run(_horizontal(X=X, standardize=False, **SGD))[:2])


def test_sgd_diverging_iterates_bounded(monkeypatch):
    """HONEST data, squared loss with a learning rate that diverges (lr = 3, 4 epochs): the
    iterates grow geometrically until z = X w leaves the range. sgd_plan cannot bound them,
    so w is clipped after every update."""
    mon = Monitor(monkeypatch)
    plan = mlmal.sgd_plan
    seen = []

    def spy(*a, **kw):
        seen.append(plan(*a, **kw))
        return seen[-1]

    monkeypatch.setattr(mlmal, "sgd_plan", spy)
    _bounded(mon, *run(_horizontal("linear", solver="sgd", lr=3.0, epochs=4, batch_size=20))[:2])
    assert seen and seen[0].w_clip is not None


def test_sgd_plan_proves_the_usual_jobs():
    """Positive control: the standardised 60 x 3 job and a 10k x 10 job (10 epochs, batches of
    64) are proved in range (no clip of X or w: no rounds added to the training)."""
    from mpc.local import default_domain

    D = default_domain("shamir")
    from protocols.apps.ml.sgd import batches, learning_rates

    for N, d, B, E in ((60, 3, 20, 1), (10_000, 10, 64, 10)):
        sched = batches(N, B, E, 0)
        p = mlmal.sgd_plan(D, F, d=d, x_bound=float(mlmal.z_bound(N)), y_bound=1.0, loss="logistic",
                           sizes=[len(i) for i in sched], rates=learning_rates(0.5, "constant", len(sched), E, 0.0),
                           cmax=1.0, l2=0.0)
        assert p.x_clip is None and p.w_clip is None, (N, p)


def test_finish_unscaling_bounded(monkeypatch):
    """HONEST data, feature_scale 2^-12 (the rows are multiplied by 4096, still inside their
    range), not standardised: coef = w / scale is truncated from w 2^16 4096 2^36 = w 2^64.
    `finish` clips w to the bound the un-scaling allows (a coefficient beyond 2^10 is not
    representable after it anyway)."""
    mon = Monitor(monkeypatch)
    _bounded(mon, *run(_horizontal(standardize=False, feature_scale=[2.0**-12] * 3, lr=2.0**-5, **SGD))[:2])


# ---------------------------------------------------------------------- vertical ---
def test_vertical_standardised_column_bounded_by_its_width(monkeypatch):
    """The cheater's standardised column holds 2^12 - 2^-16 (inside the old rows_bits width):
    the SGD's update reaches 2^65 (lr 2). The column is now declared within +-z_bound(N): the
    cheater is named by the range check (input.range) before any masked opening."""
    mon = Monitor(monkeypatch)
    skip_own_range_check(monkeypatch)

    def big(s, out):  # 2^12 - 2^-16: inside rows_bits(60) = 29 bits
        return s.domain.from_int(np.full(out.shape, (1 << (12 + F)) - 1, dtype=object))

    _poison(monkeypatch, mlmal, "encode", (60, 1), big)
    res, errs, _ = run(_vertical(epochs=1, batch_size=20, lr=2.0))
    assert mon.max_abs() < TOP, hex(mon.max_abs())
    assert res == [None] * 3
    for pid in (0, 1):
        assert isinstance(errs[pid], CheatingDetectedError) and errs[pid].check == "input.range", errs[pid]


def _stats(istd=None, mu=None):
    """The cheater's (mean, 1/sd) input: (2,) with mu f bits and 1/sd f + 16 bits."""
    def fn(s, out):
        v = s.domain.to_signed(out).astype(object)
        if mu is not None:
            v[0] = int(mu)
        if istd is not None:
            v[1] = int(istd)
        return s.domain.from_int(v)
    return fn


def _encode_stats(monkeypatch, fn):
    """Party 2's mean/1-sd input is the concatenation encode(mu) + encode(istd): intercept the
    concatenated array by wrapping np.concatenate's caller, input_all on child "m"."""
    real = mlmal.input_all

    hits = []

    async def input_all(s, x, ndim, **kw):
        if s.pid == 2 and x is not None and s.prefix.endswith("m/") and x.shape == (2,):
            x = fn(s, x)
            hits.append(1)
        return await real(s, x, ndim, **kw)

    monkeypatch.setattr(mlmal, "input_all", input_all)
    return hits


def test_vertical_finish_inverse_sd_bounded(monkeypatch):
    """The cheater's 1/sd input is 2^15 - 2^-32 (its 48-bit width allows it): w * 1/sd in
    `finish` reaches 2^63 for |w| >= 2 (2^16 w 2^47; lr 16 makes w a few units). The product is formed with 1/sd split at f bits."""
    mon = Monitor(monkeypatch)
    hits = _encode_stats(monkeypatch, _stats(istd=(1 << 47) - 1))
    _bounded(mon, *run(_vertical(**BIG_W))[:2])
    assert hits


def test_vertical_finish_mean_bounded(monkeypatch):
    """The cheater's mean input is 2^31 - 2^-16 (its 48-bit width allows it): coef . mu in
    `finish` reaches 2^63 for |coef| >= 2 (lr 16 makes the weights a few units). The shift is formed with mu split at f bits."""
    mon = Monitor(monkeypatch)
    hits = _encode_stats(monkeypatch, _stats(mu=(1 << 47) - 1))
    _bounded(mon, *run(_vertical(**BIG_W))[:2])
    assert hits


# ------------------------------------------------------------------ closed form ---
def test_closed_form_horizontal_moments_bounded(monkeypatch):
    """The cheater's moment inputs (in range) make the closed form's mean 2^30: its outer
    product m m^T (and then A and the Newton-Schulz iterates X_k) leave the range (2^126)."""
    mon = Monitor(monkeypatch)

    def fn(s, out):
        v = s.domain.to_signed(out).astype(object)
        v[:3] = 1 << 46
        return s.domain.from_int(v)

    _poison(monkeypatch, mllin, "encode", (4 + 16,), fn)
    _bounded(mon, *run(_horizontal("linear"))[:2])


def test_closed_form_vertical_newton_schulz_bounded(monkeypatch):
    """Vertical ridge: the cheater's standardised column alternates +-z_bound(N) (inside its
    declared width) instead of having unit variance: the Newton-Schulz iterates, started
    from I / trace_bound with a public trace bound, diverge to 2^126 at the truncations."""
    mon = Monitor(monkeypatch)

    def big(s, out):
        v = np.full(out.shape, (mlmal.z_bound(60) << F) - 1, dtype=object)
        v[::2] *= -1
        return s.domain.from_int(v)

    _poison(monkeypatch, mlmal, "encode", (60, 1), big)
    _bounded(mon, *run(_vertical("ridge", alpha=1.0))[:2])


def _moment_entries(entries):
    """The cheater's closed-form moment input (20 = 4 means + 4 x 4 second moments of
    [x0, x1, x2, y], f bits) with `entries` {index: encoded value} overwritten."""
    def fn(s, out):
        v = s.domain.to_signed(out).astype(object)
        for i, val in entries.items():
            v[i] = int(val)
        return s.domain.from_int(v)
    return fn


def test_closed_form_horizontal_cov_xy_bounded(monkeypatch):
    """The cheater's second moment E[x0 y] is 2^30 (in its 48-bit range): cov(x0, y) / sd_0
    was formed as one product of 2^46 by 1/sd's 2^29 (2^75 at the truncation), and b then
    drove the solve's last product out. cov(x_i, y) is clipped to sd_i sd_y's honest bound
    and split at f bits; b is clipped before the solve."""
    mon = Monitor(monkeypatch)
    _poison(monkeypatch, mllin, "encode", (4 + 16,), _moment_entries({4 + 3: 1 << 46, 4 + 12: 1 << 46}))
    _bounded(mon, *run(_horizontal("linear"))[:2])


def test_closed_form_horizontal_indefinite_a_bounded(monkeypatch):
    """The cheater's cross moment E[x0 x1] makes cov(x0, x1) 2^20 with unit variances: the
    'correlation' is 2^20 (A indefinite and far beyond the trace bound), so the Newton-Schulz
    iterates diverge doubly exponentially. A is clipped to the correlations' bound (still
    indefinite: 1.125 off the diagonal) and the iterates X_k, A X_k every iteration."""
    mon = Monitor(monkeypatch)
    _poison(monkeypatch, mllin, "encode", (4 + 16,), _moment_entries({4 + 1: 1 << 36, 4 + 4: 1 << 36}))
    _bounded(mon, *run(_horizontal("ridge", alpha=1.0))[:2])


def _solve_job(A, b, bounds):
    async def job(s):
        from protocols import malicious as mal

        D = s.domain
        Am = await mal.input(s, D.from_int(np.rint(A * 2**F).astype(np.int64)) if s.pid == 0 else None, 0, A.shape)
        bm = await mal.input(s, D.from_int(np.rint(b * 2**F).astype(np.int64)) if s.pid == 0 else None, 0, b.shape)
        w = await mllin.newton_schulz_solve(s, Am, bm, 2 * 1.05, iters=24, bounds=bounds)
        (v,) = await mal.open(s, w)
        return D.to_signed(v).tolist()
    return job


def test_newton_schulz_bounded_for_an_indefinite_a(monkeypatch):
    """newton_schulz_solve alone, A = [[1, 1.1], [1.1, 1]] (eigenvalues 2.1 and -0.1: what a
    cheater's in-range correlations can make) with the trace bound 2.1: without bounds the
    iterates leave the truncation's range (the power of the monitor); with the bounds (a =
    1.125, b = 2) every truncated / compared value stays below 2^63."""
    A = np.array([[1.0, 1.1], [1.1, 1.0]])
    b = np.array([1.0, -1.0])
    mon = Monitor(monkeypatch)
    res, errs, _ = run(_solve_job(A, b, None))
    assert mon.max_abs() >= TOP, hex(mon.max_abs())  # positive control: it does diverge
    mon = Monitor(monkeypatch)
    _bounded(mon, *run(_solve_job(A, b, (1.125, 2.0)))[:2])


def test_newton_schulz_bounded_solve_matches_the_unbounded_one():
    """Honest A (a correlation matrix + ridge) and b: the bounded solve gives the unbounded
    one's solution (up to the truncations' rounding: a few 2^-16) and numpy's."""
    A = np.array([[1.0, 0.3, -0.2], [0.3, 1.0, 0.5], [-0.2, 0.5, 1.0]]) + 0.01 * np.eye(3)
    b = np.array([0.7, -1.2, 2.5])
    ref = np.linalg.solve(A, b)

    async def job(s):
        return [await _solve_job(A, b, bd)(s.child(str(i))) for i, bd in enumerate((None, (1.125, 4.0)))]

    res, errs, _ = run(job)
    assert errs == [None] * 3, errs
    plain, bounded = (np.array(v) / 2**F for v in res[0])
    assert np.max(np.abs(plain - bounded)) <= 4 * 2.0**-16, (plain, bounded)
    assert np.max(np.abs(bounded - ref)) < 1e-3, (bounded, ref)


def test_solve_plan_bounds():
    """solve_plan: the proved bounds hold for the closed form's defaults (d = 3 and 10,
    f_solve = 20), the honest conditioning limit is stated (xm >= 2^22 / (4 d^2)), a tiny
    f_solve needs the last iterate clipped, and an f_solve leaving no room is refused
    (ConfigError, a public setting)."""
    from mpc.local import default_domain
    from protocols.apps.ml.malicious import lim
    from protocols.errors import ConfigError

    D = default_domain("shamir")
    L = lim(D)
    for d in (3, 10):
        p = mllin.solve_plan(D, d, a=1.125, b=2.0**16.5, trace_bound=1.05 * d, f=F, f_solve=20)
        XT = d * p.xm * (2 + p.tau)
        assert d * p.a * XT * 2.0**40 < L and d * p.xm * (2 + p.tau) * 2.0**40 < L
        assert not p.clip_last and d * XT * 2.0**20 * (p.b + 1) < L
        assert p.xm >= 2.0**22 / (4 * d * d), (d, p)
        assert p.first_clip == 4, p  # iterations 0..3 proved in range for any |A_ij| <= a
    assert mllin.solve_plan(D, 3, a=1.125, b=2.0**16.5, trace_bound=3.15, f=F, f_solve=16).clip_last
    with pytest.raises(ConfigError):
        mllin.solve_plan(D, 3, a=1.125, b=1.0, trace_bound=3.15, f=F, f_solve=31)


# ------------------------------------------------------------------- the clip ---
def test_clip_many_exact_at_the_edges():
    """batch.clip_many: exact, bounds inclusive, several items of different shapes and bounds
    in one call (one comparison batch: the rounds of one ltz + one product)."""
    from protocols import malicious as mal
    from protocols.malicious.batch import clip_many

    a = np.array([-(1 << 40), -7, -3, 0, 3, 4, 1 << 40], dtype=object)
    b = np.array([[5, -5], [2, 100]], dtype=object)

    async def job(s):
        D = s.domain
        xa = await mal.input(s, D.from_int(a) if s.pid == 0 else None, 0, a.shape, bits=48)
        xb = await mal.input(s, D.from_int(b) if s.pid == 1 else None, 1, b.shape)
        r0 = s.stats.rounds
        ca, cb = await clip_many(s, [(xa, -3, 3), (xb, np.array([[0, -4], [0, 0]]), 4)])
        rounds = s.stats.rounds - r0
        va, vb = await mal.open(s, ca, cb)
        return D.to_signed(va).tolist(), D.to_signed(vb).tolist(), rounds

    async def ref(s):  # the same inputs, then one ltz of the same size (masks made inline)
        D = s.domain
        xa = await mal.input(s, D.from_int(a) if s.pid == 0 else None, 0, a.shape, bits=48)
        await mal.input(s, D.from_int(b) if s.pid == 1 else None, 1, b.shape)
        r0 = s.stats.rounds
        await mal.ltz(s, mal.MShare.__add__(xa, 0).reshape(a.size))
        return s.stats.rounds - r0

    res, errs, _ = run(job)
    assert errs == [None] * 3, errs
    va, vb, rounds = res[0]
    assert va == [-3, -3, -3, 0, 3, 3, 3]
    assert vb == [[4, -4], [2, 4]]
    assert res[1][:2] == res[0][:2]
    ltz_rounds = run(ref)[0][0]
    # one batched ltz (with its inline mask preparation), then re-keying 2 + the selects' product 2
    assert rounds == ltz_rounds + 2 + 2, (rounds, ltz_rounds)


def test_short_comparisons_used_within_their_width(monkeypatch):
    """malperf2: the horizontal trainer's standardised-row clip and the SGD's sigmoid compare
    at the widths their bounds prove (`_xstd_bits`, `SgdPlan.z_bits`: shorter than 64 bits),
    and every such input stays below its 2^(bits-1), honest and with the cheater's moments
    of test_horizontal_standardised_rows_bounded (whose rows reach the clip's bound)."""
    mon = Monitor(monkeypatch)
    _bounded(mon, *run(_horizontal(**SGD))[:2])
    lims = {lim for n, _, lim in mon.values() if n == "ltz"}
    assert min(lims) < TOP and len(lims) >= 3, lims  # default, the clip's and the sigmoid's
    mon2 = Monitor(monkeypatch)
    _poison(monkeypatch, mlmal, "encode", (6,), _moments(-(2.0**14), 2.0**-10))
    _bounded(mon2, *run(_horizontal(**SGD))[:2])
