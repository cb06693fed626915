"""The horizontal fraud_aggregate with security = "malicious" (issue 16), all parties in one
process: each bank scores its own rows with the public model and inputs per-group (flagged,
unflagged) counts as range-checked MShares; k-suppression under MPC. DP noise on both fraud
aggregates (vertical and horizontal) in malicious mode. On main these jobs were refused
(MaliciousUnsupportedError)."""

import numpy as np
import pytest
from malicious_helpers import run
from test_jobs import COEF as VCOEF
from test_jobs import GROUPS, INTERCEPT, signer  # noqa: F401 (signer: a fixture)
from test_jobs import _data as _vdata
from test_jobs import _manifest as _vmanifest

from mpc.node.fraud_mjobs import COUNT_BITS, local_flags
from mpc.node.jobs import REGISTRY, JobContext, finish_outputs, run_job
from mpc.node.manifest import sign_manifest
from protocols import malicious as mal
from protocols.arith.fixedpoint import FixedPoint
from protocols.errors import CheatingDetectedError
from protocols.malicious import chida18

pytestmark = pytest.mark.timeout(120)

COEF, ICPT = [1.0, -0.5], -0.25
PARAMS = {"coef": COEF, "intercept": ICPT, "threshold": 0.5, "partition": "horizontal",
          "group_column": "merchant", "groups": GROUPS, "k_min": 3}


def _data():
    rng = np.random.default_rng(8)
    X = [rng.normal(size=(30 + 7 * i, 2)).round(3) for i in range(3)]
    g = [rng.choice([3, 5, 7], size=len(x), p=[0.5, 0.4, 0.1]) for x in X]
    return X, g


def _manifest(key):
    _, k = key
    return sign_manifest({"computation": "fraud_aggregate", "idempotency_key": "mh",
                          "recipients": ["analyst"], "parameters": PARAMS,
                          "consortium": "demo", "not_after": 4102444800,
                          "inputs": {f"bank{i}": {"source": "tx", "columns": ["a", "b"]}
                                     for i in range(3)}}, k)


def _job(m, X, g, dp=None):
    async def job(s):
        ctx = JobContext(s, m, ["bank0", "bank1", "bank2"], X[s.pid], None,
                         extra={"merchant": g[s.pid].astype(float)}, k_floor=1, dp=dp)
        outs = await REGISTRY["fraud_aggregate"].run(ctx)
        got = {}
        for name, o in outs.items():  # what the analyst reconstructs, after the verification
            (v,) = await mal.open(s, o.share)
            got[name] = FixedPoint(s.domain, o.f).decode(v)
        return got

    return job


def _want(X, g, k):
    z = np.concatenate(X) @ COEF + ICPT
    assert np.min(np.abs(z)) > 1e-3  # no row on the threshold
    ga, flags = np.concatenate(g), z > 0
    return {str(q): (int(flags[ga == q].sum()) if (ga == q).sum() >= k and flags[ga == q].sum() >= k
                     else None) for q in GROUPS}


def test_malicious_horizontal_fraud_aggregate_exact_counts(signer):  # noqa: F811
    X, g = _data()
    m = _manifest(signer)
    res, errs, _ = run(_job(m, X, g))
    assert errs == [None, None, None], errs
    for r in res:
        out = finish_outputs("fraud_aggregate", r, PARAMS)["by_group"]
        assert out == _want(X, g, 3), out
    assert any(v is not None for v in out.values()) and out["9"] is None


def test_negative_count_from_a_cheating_bank_named_nothing_released(signer, monkeypatch):  # noqa: F811
    """bank2 skips its own range check and inputs -20 unflagged rows in every group (to push a
    small group's size over k with no rows of its own): caught under MPC with check
    input.range naming bank2, on every party, before any opening."""
    X, g = _data()
    real = chida18._owner_bits

    def owner_bits(s, x, bits, signed):
        if s.pid != 2:
            return real(s, x, bits, signed)
        D = s.domain
        v = D.to_int(x).astype(np.int64)
        v[1] = -20
        B = real(s, D.from_int(np.zeros_like(v)), bits, signed)
        B[0] = D.from_int(v)  # x = b_0 + 0: not a bit where v is not 0 or 1
        return B

    monkeypatch.setattr(chida18, "_owner_bits", owner_bits)
    res, errs, _ = run(_job(_manifest(signer), X, g))
    assert res == [None, None, None]
    for e in errs[:2]:
        assert isinstance(e, CheatingDetectedError) and e.check == "input.range", e
        assert getattr(e, "owners", None) == (2,), e


def test_changed_share_caught_on_every_honest_party(signer):  # noqa: F811
    X, g = _data()
    res, errs, _ = run(_job(_manifest(signer), X, g), cheat=("mking", None))
    assert res[:2] == [None, None]
    assert all(isinstance(e, CheatingDetectedError) for e in errs[:2]), errs


def test_local_flags_are_the_fixed_point_score():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 3)) * 10
    coef = np.array([0.5, -1.25, 2.0])
    z = X @ coef + 0.3
    keep = np.abs(z) > 1e-3
    assert np.array_equal(local_flags(X, coef, 0.3, 0.5, True)[keep], (z > 0)[keep])
    t = float(np.log(0.9 / 0.1))  # proba: threshold 0.9 is the logit 2.197
    keep = np.abs(z - t) > 1e-3
    assert np.array_equal(local_flags(X, coef, 0.3, 0.9, True)[keep], (z > t)[keep])
    assert np.array_equal(local_flags(X, coef, 0.3, 1.5, False)[keep := np.abs(z - 1.5) > 1e-3],
                          (z > 1.5)[keep])
    big = np.full((2, 1), 2.0**40)  # beyond int64 products: the exact Python-integer path
    assert local_flags(big, np.array([2.0**20]), 0.0, 0.0, False).tolist() == [True, True]
    assert local_flags(np.zeros((0, 3)), coef, 0.0, 0.5, True).shape == (0,)
    assert COUNT_BITS <= 62


def test_malicious_horizontal_fraud_aggregate_with_dp(signer):  # noqa: F811
    """eps 1000 (Laplace scale 2/1000 per count): the noise rounds to 0, the counts are exact,
    and the release states its noise and epsilon."""
    X, g = _data()
    dp = {"epsilon": 1000.0, "delta": 0.0, "mechanism": "laplace"}
    res, errs, _ = run(_job(_manifest(signer), X, g, dp=dp))
    assert errs == [None, None, None], errs
    out = finish_outputs("fraud_aggregate", res[0], PARAMS)["by_group"]
    assert out == _want(X, g, 3), out
    assert res[0]["epsilon"][0] == pytest.approx(1000.0) and 0 <= res[0]["noise_std"][0] < 0.01


def test_malicious_vertical_fraud_aggregate_with_dp_noise(signer):  # noqa: F811
    """The vertical job (owner bank0's keys, features split) at epsilon 0.5: the stated noise
    std is that of the discrete Laplace at scale 4, and over 3 runs some released count
    differs from the exact one (the noise is there)."""
    X0, X1, g, z = _vdata()
    params = {"owner": "bank0", "coef": VCOEF, "intercept": INTERCEPT, "threshold": 0.5,
              "group_column": "merchant", "groups": GROUPS, "k_min": 1}
    m = sign_manifest(_vmanifest("fraud_aggregate", params), signer[1])
    dp = {"epsilon": 0.5, "delta": 0.0, "mechanism": "laplace"}
    parts, extras = [X0, X1, None], [{"merchant": g.astype(float)}, {}, {}]

    async def job(s):
        ctx = JobContext(s, m, ["bank0", "bank1", "bank2"], parts[s.pid], None,
                         extra=extras[s.pid], k_floor=1, dp=dp)
        outs = await REGISTRY["fraud_aggregate"].run(ctx)
        got = {}
        for name, o in outs.items():
            (v,) = await mal.open(s, o.share)
            got[name] = FixedPoint(s.domain, o.f).decode(v)
        return got

    exact = [int((z[g == q] > 0).sum()) for q in GROUPS]
    diffs = []
    for seed in range(3):
        res, errs, _ = run(job, seed=seed)
        assert errs == [None, None, None], errs
        a = np.exp(-1 / 4)
        assert res[0]["noise_std"][0] == pytest.approx(np.sqrt(2 * a) / (1 - a), abs=1e-3)
        got = np.round(res[0]["counts"]).astype(int)
        rel = np.round(res[0]["released"]).astype(bool)
        diffs.append(np.abs(got[rel] - np.array(exact)[rel]).sum())
    assert sum(diffs) > 0, diffs


@pytest.mark.parametrize("security", ["semi-honest", "malicious"])
def test_noise_of_many_groups_refused_before_any_input(signer, security):  # noqa: F811
    """review3 (issue 16): 4096 groups (MAX_GROUPS) with the Gaussian at epsilon 0.006
    (sigma ~1800 per count, within the per-sample table cap): 8192 samples of 14,650
    comparisons, ~1.2e8 in one batch (~2.4 TB at ~20 KB each in malicious mode). Before, the
    malicious job checked one sample only, after scoring and every input, and the semi-honest
    one not at all: both went on to draw it. Now JobParameterError on every party before any
    round. (Not run on main: it would exhaust the machine's memory.)"""
    from mpc.node.fraud_jobs import MAX_GROUPS
    from mpc.node.jobs import JobParameterError

    X, g = _data()
    params = {**PARAMS, "groups": list(range(MAX_GROUPS))}
    m = sign_manifest({"computation": "fraud_aggregate", "idempotency_key": "mh",
                       "recipients": ["analyst"], "parameters": params,
                       "consortium": "demo", "not_after": 4102444800,
                       "inputs": {f"bank{i}": {"source": "tx", "columns": ["a", "b"]}
                                  for i in range(3)}}, signer[1])
    dp = {"epsilon": 0.006, "delta": 1e-6, "mechanism": "gaussian"}

    async def job(s):
        ctx = JobContext(s, m, ["bank0", "bank1", "bank2"], X[s.pid], None,
                         extra={"merchant": g[s.pid].astype(float)}, k_floor=1, dp=dp)
        try:
            await REGISTRY["fraud_aggregate"].run(ctx)
        except JobParameterError as e:
            return "refused", "in all" in str(e), s.stats.rounds
        return "ran", None, s.stats.rounds

    if security == "malicious":
        res, errs, _ = run(job)
        assert errs == [None] * 3, errs
    else:
        import mpc

        res = mpc.run_local(3, job).results
    assert res == [("refused", True, 0)] * 3, res


@pytest.mark.parametrize("k", [2**64, 2**64 + 3, 2**63])
def test_k_beyond_the_comparison_range_refused_not_wrapped(signer, k):  # noqa: F811
    """review3 (issue 16): k = max(k_min, every node's policy.min_group_size) entered
    fraud_malicious.suppress unbounded: the analyst's k_min (only >= 1 was checked) or a
    cheating bank's min_group_size (any int in its view) of 2^64 made [size - k < 0] the
    comparison of size mod 2^64 with 0, and on main every group was released, the ones
    below the honest banks' floor included (2^64 + 3: 'released' came out 4). Now a typed
    ParameterError on every party and nothing is released."""
    from protocols.errors import ParameterError

    X, g = _data()
    m = _manifest(signer)

    async def job(s):
        ctx = JobContext(s, m, ["bank0", "bank1", "bank2"], X[s.pid], None,
                         extra={"merchant": g[s.pid].astype(float)}, k_floor=k)
        outs = await REGISTRY["fraud_aggregate"].run(ctx)
        return {name: (await mal.open(s, o.share))[0] for name, o in outs.items()}

    res, errs, _ = run(job)
    assert res == [None] * 3, res
    assert all(isinstance(e, ParameterError) and "suppress: k" in str(e) for e in errs), errs


def test_equivocated_min_group_size_caught_not_a_lower_k(signer):  # noqa: F811
    """review3 (issue 16): the agreement views are sent to each peer separately, so a cheating
    bank can tell bank0 min_group_size 10 and bank1 19 (both honest floors are 10): k = 10 at
    bank0, 19 at bank1. It then subtracts 2 * 19 - 10 = 28 itself, which puts its share of
    sizes - k on the line through the honest ones: the openings are consistent with
    k' = 2 k_0 - k_1 = 1. On main the group of 4 flagged rows (below every honest floor) was
    released with no error; now every honest party raises security.cheating_detected
    ("agreement") before any input and nothing is released."""
    from mpc.node.daemon import error_code

    X, g = _data()
    m = _manifest(signer)
    ks = [10, 19, 28]

    async def job(s):
        ctx = JobContext(s, m, ["bank0", "bank1", "bank2"], X[s.pid], None,
                         extra={"merchant": g[s.pid].astype(float)}, k_floor=ks[s.pid])
        outs = await run_job(REGISTRY["fraud_aggregate"], ctx)  # as the runner (hard4)
        return {name: (await mal.open(s, o.share))[0] for name, o in outs.items()}

    res, errs, _ = run(job)
    assert res == [None] * 3, res
    for e in errs[:2]:
        assert isinstance(e, CheatingDetectedError) and e.check == "agreement", errs
        assert error_code(e) == "security.cheating_detected"


def test_stated_noise_std_of_a_tiny_epsilon_is_not_wrapped(signer):  # noqa: F811
    """review3 (issue 16): epsilon 1e-15 (Laplace scale 2e15 per count, L = 57 digits: within
    the caps) states a noise std of ~2.8e15; its encoding with 16 fractional bits (1.9e20)
    was cast to int64 and wrapped, so on main the release stated a negative std. Now the
    stated values are encoded in Python integers."""
    import warnings

    from protocols.apps import dp as dpm

    X, g = _data()
    dp = {"epsilon": 1e-15, "delta": 0.0, "mechanism": "laplace"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # main's int64 cast warns
        res, errs, _ = run(_job(_manifest(signer), X, g, dp=dp))
    assert errs == [None, None, None], errs
    want = dpm.calibrate("laplace", 1e-15 / 2, 0.0, 1.0).std()
    assert res[0]["noise_std"][0] == pytest.approx(want, rel=1e-9), (res[0]["noise_std"], want)
