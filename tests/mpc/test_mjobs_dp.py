"""DP jobs with security = "malicious" (issue 16), all parties in one process: the noise
comes from protocols.apps.dp_malicious (checked), with the semi-honest jobs' calibration.
On main these jobs were refused (MaliciousUnsupportedError / security.unsupported)."""

import numpy as np
import pytest
from malicious_helpers import run
from test_jobs import signer  # noqa: F401 (a fixture)

import mpc
from mpc.node.jobs import REGISTRY, JobContext, JobParameterError, run_job
from mpc.node.manifest import sign_manifest
from protocols import core
from protocols import malicious as mal
from protocols.arith.field import Mersenne127
from protocols.arith.fixedpoint import FixedPoint
from protocols.errors import CheatingDetectedError

pytestmark = pytest.mark.timeout(180)

BOUNDS = {0: [[0, 10]], 1: [[0, 20]], 2: [[0, 10]]}


def _parts():
    rng = np.random.default_rng(5)
    parts = [rng.uniform(0, 10, size=(40 + 5 * i, 1)).round(2) for i in range(3)]
    parts[1][0, 0] = 10_000.0  # an outlier: clipped to bank1's bound 20
    return parts


def _job(m, parts, terms, opener):
    async def job(s):
        ctx = JobContext(s, m, ["bank0", "bank1", "bank2"], parts[s.pid], None, dp=terms)
        outs = await REGISTRY["aggregate_sum"].run(ctx)
        got = {}
        for name, o in outs.items():
            (v,) = await opener(s, o.share)
            got[name] = FixedPoint(s.domain, o.f).decode(v)
        return got

    return job


def _manifest(key):
    return sign_manifest({"computation": "aggregate_sum", "idempotency_key": "k",
                          "recipients": ["analyst"], "consortium": "demo",
                          "not_after": 4102444800,
                          "inputs": {f"bank{i}": {"source": "tx", "columns": ["a"]}
                                     for i in range(3)}}, key[1])


def test_malicious_dp_aggregate_clips_and_adds_the_stated_noise(signer):  # noqa: F811
    parts, m = _parts(), _manifest(signer)
    terms = {"epsilon": 1000.0, "delta": 0.0, "mechanism": "laplace", "bounds": BOUNDS}
    res, errs, _ = run(_job(m, parts, terms, mal.open))
    assert errs == [None, None, None], errs
    got = res[0]
    clipped = sum(np.clip(p, 0, b[0][1]).sum() for p, b in zip(parts, BOUNDS.values(), strict=True))
    assert abs(got["sum"][0] - clipped) < 1.0, (got, clipped)  # the outlier would add 9980
    assert abs(got["count"][0] - 135) <= 2
    assert got["epsilon"][0] == pytest.approx(1000.0)
    # the same calibration as the semi-honest job (same bounds, same split of epsilon)
    semi = mpc.run_local(3, _job(m, parts, terms, core.open), scheme="shamir",
                         domain=Mersenne127()).results[0]
    assert np.allclose(got["noise_std"], semi["noise_std"], atol=2**-15)


def test_malicious_dp_noise_is_noise(signer):  # noqa: F811
    """At epsilon 0.5 the count's noise (discrete Laplace, scale (d + 1) / eps = 4) is not 0
    in every one of 4 runs: the released count is not the exact count."""
    parts, m = _parts(), _manifest(signer)
    terms = {"epsilon": 0.5, "delta": 0.0, "mechanism": "laplace", "bounds": BOUNDS}
    counts = [run(_job(m, parts, terms, mal.open), seed=sd)[0][0]["count"][0] for sd in range(4)]
    assert any(round(c) != 135 for c in counts), counts


def test_cheater_in_the_dp_aggregate_caught_nothing_released(signer):  # noqa: F811
    parts, m = _parts(), _manifest(signer)
    terms = {"epsilon": 1.0, "delta": 0.0, "mechanism": "laplace", "bounds": BOUNDS}
    res, errs, _ = run(_job(m, parts, terms, mal.open), cheat=("mking", None))
    assert res[:2] == [None, None]
    assert all(isinstance(e, CheatingDetectedError) for e in errs[:2]), errs


@pytest.mark.parametrize("security", ["semi-honest", "malicious"])
def test_gaussian_noise_beyond_the_sampler_refused_before_any_input(signer, security):  # noqa: F811
    """A Gaussian whose table would need ~20,000 comparisons per sample even on the coarse
    lattice: the row count's (sensitivity 1, which no lattice makes smaller) at epsilon 0.004
    split over 2 outputs, delta 1e-6: sigma ~2200. Before the cap the sampler drew it anyway,
    and its memory grows with sigma: a realistic sum (bounds in the thousands, before the
    coarse lattice) asked for ~10^9 thresholds per sample and the node's process was killed
    for memory. Now: JobParameterError on every party, no round spent."""
    parts, m = _parts(), _manifest(signer)
    bounds = {o: [[0, 0.01]] for o in range(3)}
    terms = {"epsilon": 0.004, "delta": 1e-6, "mechanism": "gaussian", "bounds": bounds}

    async def job(s):
        ctx = JobContext(s, m, ["bank0", "bank1", "bank2"], parts[s.pid], None, dp=terms)
        try:
            await REGISTRY["aggregate_sum"].run(ctx)
        except JobParameterError as e:
            return "refused", "gaussian" in str(e), s.stats.rounds
        return "ran", None, s.stats.rounds

    if security == "malicious":
        res, errs, _ = run(job)
    else:
        res = mpc.run_local(3, job).results
    assert res == [("refused", True, 0)] * 3, res


def test_check_noise_cap():
    from protocols.apps import dp

    ok = dp.calibrate("gaussian", 1.0, 1e-6, 100.0)  # sigma ~ 2.6 x 100
    dp.check_noise(ok)
    assert dp.gaussian_table_len(ok.scale ** 2) <= dp.MAX_GAUSSIAN_TABLE
    big = dp.calibrate("gaussian", 1.0, 1e-6, 2**16 * 10.0)
    with pytest.raises(dp.NoiseRangeError):
        dp.check_noise([ok, big])
    with pytest.raises(dp.NoiseRangeError):
        dp.gaussian_table(big.scale ** 2)
    dp.check_noise(dp.calibrate("laplace", 0.01, 0.0, 2**16 * 1e6))  # laplace: log-size digits


def test_laplace_digits_non_finite_scales_and_total_comparisons_capped():
    """review3 (issue 16): check_noise checked only the Gaussian's table per sample. A Laplace
    scale of 6.5e22 (epsilon 1e-12 on a sum bounded by 1e6) needs L = 81 digits: the
    malicious fraud job drew it after every input and failed with OverflowError (digit
    weights 2^j in int64, L >= 64); at L = 63 its noise could leave the comparisons' range
    |v| < 2^63 (the k-suppression compares noisy counts); an infinite scale (a peer's bounds
    of 1e305) passed too; the stated std of a scale above ~1e16 divided by zero; and 2K
    samples of a table under the per-sample cap (K = 4096 groups, sigma ~ 1800) are ~1.2e8
    comparisons, far beyond a node's memory (~20 KB each per party in malicious mode)."""
    from protocols.apps import dp

    a = np.exp(-1.0)
    lap1 = dp.Noise("laplace", 1.0, 1.0, 1.0, 0.0, 0.5)
    assert dp.noise_comparisons(lap1) == 8 and dp.noise_comparisons(lap1, 10) == 80  # L = 6
    assert dp.noise_comparisons([lap1, dp.calibrate("laplace", 1.0, 0.0, 1000.0)]) == 2 * 18
    assert dp.noise_comparisons(dp.Noise("gaussian", 4.0, 1.0, 1.0, 1e-6, 0.1)) == 35 == \
        len(dp.gaussian_table(16))
    assert lap1.std() == pytest.approx(np.sqrt(2 * a) / (1 - a))
    huge = dp.Noise("laplace", 1e17, 1.0, 1.0, 0.0, 0.5)  # L = 62: within the cap
    dp.check_noise(huge)
    assert huge.std() == pytest.approx(np.sqrt(2) * 1e17)  # 1 - exp(-1e-17) was 0.0
    with pytest.raises(dp.NoiseRangeError, match="digits"):
        dp.check_noise(dp.calibrate("laplace", 1e-12, 0.0, 2**16 * 1e6))
    dp.check_noise(dp.Noise("laplace", 2.0**62 / 48, 1.0, 1.0, 0.0, 0.5))  # L = 62: the cap
    with pytest.raises(dp.NoiseRangeError):
        dp.check_noise(dp.Noise("laplace", 2.0**63 / 48, 1.0, 1.0, 0.0, 0.5))  # L = 63
    with pytest.raises(dp.NoiseRangeError, match="cannot be drawn"):
        dp.check_noise(dp.calibrate("laplace", 1.0, 0.0, float("inf")))
    g = dp.calibrate("gaussian", 0.006 / 2, 1e-6 / 2, 1.0)  # the fraud jobs' split: sigma ~1800
    dp.check_noise(g)  # one sample fits its table cap (T = 14,650)
    with pytest.raises(dp.NoiseRangeError, match="in all"):
        dp.check_noise(g, samples=2 * 4096)
    dp.check_noise(dp.calibrate("laplace", 0.5, 0.0, 1.0), samples=2 * 4096)  # L = 7: 73,728
    with pytest.raises(dp.NoiseRangeError, match="in all"):
        dp.check_noise(dp.calibrate("laplace", 0.5, 0.0, 1.0), samples=16_000)  # 144,000


@pytest.mark.parametrize("security", ["semi-honest", "malicious"])
def test_laplace_noise_beyond_its_digits_refused_before_any_input(signer, security):  # noqa: F811
    """epsilon 1e-30 (any epsilon in (0, policy epsilon] passes the policy): scale ~2.6e36,
    L = 128 digits. On main both jobs failed with an untyped ZeroDivisionError (Noise.std:
    1 - exp(-1/scale) is 0.0 in floating point); had they passed it, the sampler's int64
    digit weights overflow from L = 64. Now JobParameterError on every party before any
    round."""
    parts, m = _parts(), _manifest(signer)
    terms = {"epsilon": 1e-30, "delta": 0.0, "mechanism": "laplace", "bounds": BOUNDS}

    async def job(s):
        ctx = JobContext(s, m, ["bank0", "bank1", "bank2"], parts[s.pid], None, dp=terms)
        try:
            await REGISTRY["aggregate_sum"].run(ctx)
        except JobParameterError as e:
            return "refused", "digits" in str(e), s.stats.rounds
        return "ran", None, s.stats.rounds

    if security == "malicious":
        res, errs, _ = run(job)
        assert errs == [None] * 3, errs
    else:
        res = mpc.run_local(3, job).results
    assert res == [("refused", True, 0)] * 3, res


def test_malicious_dp_sum_is_the_semi_honest_sum_of_encoded_rows(signer, monkeypatch):  # noqa: F811
    """review3 (issue 16): with DP the malicious aggregate encoded each bank's floating-point
    column sum, the semi-honest one sums the encoded clipped rows exactly (what the
    sensitivity ceil(max |bound| 2^f) bounds: one row changes that sum by its own encoding,
    while a float sum's rounding moves with every row). Rows of 0.4 units of 2^-16: five
    of them encode to 0 each (sum 0) but their float sum to round(2.0) = 2 per bank, so on
    main the malicious sum was 6 units, the semi-honest 0. With the noise set to 0 both
    release the same sum."""
    from protocols.apps import dp as dpm
    from protocols.apps import dp_malicious as dpmal
    from protocols.malicious.batch import refresh_many

    async def no_noise(s, x, noise, **kw):
        return (await refresh_many(s, x))[0] if s.security == "malicious" else x

    monkeypatch.setattr(dpmal, "add_noise", no_noise)
    monkeypatch.setattr(dpm, "add_noise", no_noise)
    parts, m = [np.full((5, 1), 0.4 / 2**16) for _ in range(3)], _manifest(signer)
    terms = {"epsilon": 1.0, "delta": 0.0, "mechanism": "laplace", "bounds": BOUNDS}
    res, errs, _ = run(_job(m, parts, terms, mal.open))
    assert errs == [None, None, None], errs
    semi = mpc.run_local(3, _job(m, parts, terms, core.open), scheme="shamir",
                         domain=Mersenne127()).results[0]
    assert semi["sum"][0] == 0.0 and semi["count"][0] == 15
    assert res[0]["sum"][0] * 2**16 == semi["sum"][0] * 2**16 == 0, (res[0], semi)
    assert res[0]["count"][0] == 15


def test_equivocated_dp_terms_caught(signer):  # noqa: F811
    """review3 (issue 16): the same equivocation for the DP terms (a peer's epsilon told
    differently to the two honest nodes, 1.0 and 0.9, with the same digit count L = 27): the
    honest nodes' coin thresholds differ, so the cheater can steer the effective ones to
    2 P_0 - P_1 (its own share put on the line through the honest ones, as in
    test_fraud_mjobs.py::test_equivocated_min_group_size_caught_not_a_lower_k, where that
    passed every check on main) without changing any shape. This cheater does not adjust its
    share, so on main the job failed later at an opening (check "open"); now the
    equivocation itself is caught: security.cheating_detected ("agreement") on every honest
    party before any input."""
    parts, m = _parts(), _manifest(signer)
    eps = [1.0, 0.9, 0.8]

    async def job(s):
        terms = {"epsilon": eps[s.pid], "delta": 0.0, "mechanism": "laplace", "bounds": BOUNDS}
        ctx = JobContext(s, m, ["bank0", "bank1", "bank2"], parts[s.pid], None, dp=terms)
        outs = await run_job(REGISTRY["aggregate_sum"], ctx)  # as the runner (hard4)
        return {name: (await mal.open(s, o.share))[0] for name, o in outs.items()}

    res, errs, _ = run(job)
    assert res == [None] * 3, res
    for e in errs[:2]:
        assert isinstance(e, CheatingDetectedError) and e.check == "agreement", errs


@pytest.mark.parametrize("security", ["semi-honest", "malicious"])
def test_gaussian_sum_with_realistic_bounds_released_on_a_coarse_lattice(signer, security):  # noqa: F811
    """Gaussian DP on a sum with bounds in the thousands ([0, 5000]: sensitivity 3.3 x 10^8
    encoded units, sigma ~5 x 10^8 at epsilon 8 split over 2, delta 1e-6) needs ~4 x 10^9
    thresholds per sample: refused on main (JobParameterError), so the Gaussian mechanism was
    unusable for sums. Now the total is rounded under MPC to the lattice 2^e (e = 23:
    sensitivity 40 + 1 steps) before the noise: it runs, the released sum is within 6 stated
    std of the clipped sum, and the stated std is the coarse calibration's, at most 6.25 %
    above the exact one's."""
    from protocols.apps import dp

    rng = np.random.default_rng(11)
    parts = [rng.uniform(0, 5000, size=(30 + 4 * i, 1)).round(2) for i in range(3)]
    parts[2][0, 0] = 1e7  # clipped to 5000
    m = _manifest(signer)
    bounds = {o: [[0, 5000]] for o in range(3)}
    terms = {"epsilon": 8.0, "delta": 1e-6, "mechanism": "gaussian", "bounds": bounds}
    if security == "malicious":
        res, errs, _ = run(_job(m, parts, terms, mal.open))
        assert errs == [None, None, None], errs
    else:
        res = mpc.run_local(3, _job(m, parts, terms, core.open)).results
    got = res[0]
    clipped = sum(np.clip(p, 0, 5000).sum() for p in parts)
    sens = float(np.ceil(5000 * 2**16))
    e = dp.coarse_exponent("gaussian", sens)
    assert e == 23 and dp.coarse_sensitivity(sens, e) == 41.0
    coarse = dp.calibrate("gaussian", 4.0, 0.5e-6, 41.0)  # sigma ~59: T ~550 comparisons
    exact = dp.calibrate("gaussian", 4.0, 0.5e-6, sens)
    std = got["noise_std"][0]
    assert std == pytest.approx(coarse.scale * 2**e / 2**16, rel=1e-6)
    assert exact.scale / 2**16 < std <= 1.0625 * exact.scale / 2**16
    assert abs(got["sum"][0] - clipped) < 6 * std, (got, clipped)
    assert got["sum"][0] % 2 ** (e - 16) == 0  # on the lattice: rounded before the noise
    assert abs(got["count"][0] - 102) < 6 * got["noise_std"][1]


def test_coarse_lattice_exponent_and_sensitivity():
    """The smallest e with Delta / 2^e <= 64 (Gaussian only), and the rounded query's
    sensitivity ceil(Delta / 2^e) + 1: checked against stochastic rounding of neighbours
    exhaustively on small values (every pair a, b with |a - b| <= Delta, every coin)."""
    from protocols.apps import dp

    assert dp.coarse_exponent("gaussian", 64.0) == 0 and dp.coarse_exponent("laplace", 1e12) == 0
    assert dp.coarse_exponent("gaussian", 65.0) == 1 and dp.coarse_exponent("gaussian", 128.0) == 1
    assert dp.coarse_exponent("gaussian", 129.0) == 2
    for sens in [65.0, 100.0, 1000.0, 3.3e8, 2.0**50 + 1]:
        e = dp.coarse_exponent("gaussian", sens)
        assert sens / 2**e <= dp.COARSE_UNITS < sens / 2 ** (e - 1)
    for e, delta in [(1, 3), (2, 5), (3, 17), (2, 4)]:
        bound = dp.coarse_sensitivity(float(delta), e)
        worst = 0
        for a in range(0, 4 * 2**e):
            for b in range(a, a + delta + 1):
                for ua in (0, 1):
                    for ub in (0, 1):
                        ta, tb = a // 2**e + ua * (a % 2**e > 0), b // 2**e + ub * (b % 2**e > 0)
                        worst = max(worst, abs(tb - ta))
        assert worst <= bound, (e, delta, worst, bound)
