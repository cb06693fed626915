"""The job registry's fraud computations, all parties in one process (fast); the daemons'
end-to-end runs are in test_node.py."""

import numpy as np
import pytest

import mpc
from mpc.node.config import load_config
from mpc.node.consortium import write_consortium
from mpc.node.jobs import REGISTRY, JobContext, JobParameterError, finish_outputs
from mpc.node.manifest import load_signing_key, sign_manifest
from protocols import core
from protocols.arith.field import Mersenne127
from protocols.arith.fixedpoint import FixedPoint

pytestmark = pytest.mark.timeout(60)

COEF = [1.0, -0.5, 2.0]  # bank0: two columns, bank1: one, bank2: none
INTERCEPT = -0.25
GROUPS = [3, 5, 7, 9]


def _data(n=40, seed=3):
    rng = np.random.default_rng(seed)
    X0 = rng.normal(size=(n, 2)).round(3)
    X1 = rng.normal(size=(n, 1)).round(3)
    g = rng.choice([3, 5, 7], size=n, p=[0.5, 0.4, 0.1])  # key 9: no rows at all
    z = X0 @ COEF[:2] + X1[:, 0] * COEF[2] + INTERCEPT
    assert np.min(np.abs(z)) > 1e-3  # no row on the threshold: counts must be exact
    return X0, X1, g, z


def _manifest(computation, params, recipients=("analyst",)):
    inputs = {"bank0": {"source": "tx", "columns": ["a", "b"]},
              "bank1": {"source": "tx", "columns": ["c"]}}
    return {"computation": computation, "idempotency_key": "k", "recipients": list(recipients),
            "parameters": params, "inputs": inputs, "consortium": "demo", "not_after": 4102444800}


@pytest.fixture(scope="module")
def signer(tmp_path_factory):
    d = tmp_path_factory.mktemp("cons")
    r = write_consortium(d, 3, sources={i: {"tx": {"kind": "csv", "path": "x.csv"}}
                                        for i in range(3)})
    return load_config(r["configs"][0]), load_signing_key(r["analyst_key"])


def _run(m, parts, extras, *, scheme="additive", k_floor=1):
    spec = REGISTRY[m.computation]
    dom = Mersenne127() if scheme == "shamir" else None

    async def job(s):
        ctx = JobContext(s, m, ["bank0", "bank1", "bank2"], parts[s.pid], None,
                         extra=extras[s.pid], k_floor=k_floor)
        outs = await spec.run(ctx)
        got = {}
        for name, o in outs.items():  # what the analyst would reconstruct
            if o.share is None:
                got[name] = o.revealed
            else:
                (v,) = await core.open(s, o.share)
                got[name] = FixedPoint(s.domain, o.f).decode(v)
        return got

    return mpc.run_local(3, job, scheme=scheme, domain=dom).results


@pytest.mark.parametrize("scheme", ["additive", "shamir"])
def test_fraud_aggregate_exact_counts_and_suppression(signer, scheme):
    cfg, key = signer
    X0, X1, g, z = _data()
    params = {"owner": "bank0", "coef": COEF, "intercept": INTERCEPT, "threshold": 0.5,
              "group_column": "merchant", "groups": GROUPS, "k_min": 5}
    m = sign_manifest(_manifest("fraud_aggregate", params), key)
    REGISTRY["fraud_aggregate"].check_parameters(m, cfg)
    res = _run(m, [X0, X1, None], [{"merchant": g.astype(float)}, {}, {}], scheme=scheme,
               k_floor=2)
    flags = z > 0
    sizes = {k: int((g == k).sum()) for k in GROUPS}
    assert 0 < sizes[7] < 5 and sizes[9] == 0  # one small group, one empty group
    out = finish_outputs("fraud_aggregate", res[0], params)["by_group"]
    for k in GROUPS:  # k on both the group size and the flagged count
        n_flag = int(flags[g == k].sum())
        want = n_flag if sizes[k] >= 5 and n_flag >= 5 else None
        assert out[str(k)] == want, (k, out)
    assert any(v is not None for v in out.values())
    assert res[0]["counts"][GROUPS.index(7)] == 0  # a suppressed count is never formed


def test_policy_floor_wins_over_a_smaller_k_min(signer):
    cfg, key = signer
    X0, X1, g, z = _data()
    params = {"owner": "bank0", "coef": COEF, "intercept": INTERCEPT,
              "group_column": "merchant", "groups": GROUPS, "k_min": 2}
    m = sign_manifest(_manifest("fraud_aggregate", params), key)
    flags = z > 0
    big = int(max(min((g == k).sum(), flags[g == k].sum()) for k in GROUPS))
    res = _run(m, [X0, X1, None], [{"merchant": g.astype(float)}, {}, {}], k_floor=big)
    out = finish_outputs("fraud_aggregate", res[0], params)["by_group"]
    assert [k for k, v in out.items() if v is not None] == \
        [str(k) for k in GROUPS if (g == k).sum() >= big and flags[g == k].sum() >= big]
    assert any(v is not None for v in out.values())


def test_fraud_score_reveals_flags_to_the_owner_only(signer):
    cfg, key = signer
    X0, X1, _, z = _data()
    params = {"owner": "bank1", "coef": COEF, "intercept": INTERCEPT, "threshold": 0.5,
              "reveal_scores": True, "sigmoid": "piecewise"}
    m = sign_manifest(_manifest("fraud_score", params, recipients=["bank1"]), key)
    REGISTRY["fraud_score"].check_parameters(m, cfg)
    res = _run(m, [X0, X1, None], [{}, {}, {}])
    assert res[0]["flags"] is None and res[2]["flags"] is None
    assert res[1]["flags"].tolist() == (z > 0).astype(int).tolist()
    assert res[1]["scores"] is not None and res[0]["scores"] is None


@pytest.mark.parametrize("computation,params,recipients,match", [
    ("fraud_score", {"owner": "bank0", "coef": COEF}, ["analyst"], "recipients"),
    ("fraud_score", {"owner": "bank0", "coef": [1.0]}, ["bank0"], "coef"),
    ("fraud_score", {"coef": COEF}, ["bank0"], "owner"),
    ("fraud_score", {"owner": "bank2", "coef": COEF}, ["bank2"], "owner"),
    ("fraud_score", {"owner": "bank0", "coef": COEF, "threshold": 2.0}, ["bank0"], "threshold"),
    ("fraud_aggregate", {"owner": "bank0", "coef": COEF, "groups": [1]}, ["analyst"],
     "group_column"),
    ("fraud_aggregate", {"owner": "bank0", "coef": COEF, "group_column": "m", "groups": [1, 1]},
     ["analyst"], "groups"),
    ("fraud_aggregate", {"owner": "bank0", "coef": COEF, "group_column": "m", "groups": [1],
                         "k_min": 0}, ["analyst"], "k_min"),
    # review3: k = 2^64 wrapped in the comparison and released every group (malicious mode)
    ("fraud_aggregate", {"owner": "bank0", "coef": COEF, "group_column": "m", "groups": [1],
                         "k_min": 2**64}, ["analyst"], "k_min"),
])
def test_fraud_manifests_checked(signer, computation, params, recipients, match):
    cfg, key = signer
    m = sign_manifest(_manifest(computation, params, recipients), key)
    with pytest.raises(JobParameterError, match=match):
        REGISTRY[computation].check_parameters(m, cfg)


def test_group_set_membership_probe_learns_nothing(signer, caplog):
    """Issue 13 (second reading of the DP wiring): the analyst picks `groups` leaving out one
    key v. The owner's data check used to fail the job when any row had a key outside the
    set (`source.groups`): whether the job failed told the analyst, exactly and without noise,
    whether any row with key v exists (two neighbouring datasets, with and without that one
    row, gave different outcomes with certainty). Now such rows are counted in no group, the
    job runs the same way on both, and the count of such rows stays in the owner's log."""
    cfg, key = signer
    X0, X1, g, z = _data()
    params = {"owner": "bank0", "coef": COEF, "intercept": INTERCEPT, "threshold": 0.5,
              "group_column": "merchant", "groups": [3, 5], "k_min": 2}  # 7 left out
    m = sign_manifest(_manifest("fraud_aggregate", params), key)
    spec = REGISTRY["fraud_aggregate"]
    assert spec.extras(m, "bank0") == ["merchant"] and spec.extras(m, "bank1") == []
    outs = []
    for drop in (False, True):  # D, and D without its rows of key 7 (the probe's neighbour)
        keep = (g != 7) if drop else np.ones(len(g), bool)
        gk = g[keep].astype(float)
        with caplog.at_level("WARNING", logger="smpc.node.jobs"):
            spec.check_data(m, "bank0", X0[keep], {"merchant": gk})  # the runner's load check
        res = _run(m, [X0[keep], X1[keep], None], [{"merchant": gk}, {}, {}])
        outs.append(finish_outputs("fraud_aggregate", res[0], params)["by_group"])
    assert outs[0] == outs[1]  # the rows of key 7 changed nothing the analyst sees
    flags = z > 0
    for k in (3, 5):  # and the listed groups are counted exactly as before
        n, f = int((g == k).sum()), int(flags[g == k].sum())
        assert outs[0][str(k)] == (f if n >= 2 and f >= 2 else None)
    assert "outside parameters.groups" in caplog.text  # the owner's own log only


def test_computation_names_match_the_registry():
    """config writes mpc.node.computations.COMPUTATIONS into demo policies without importing
    the job runners: the list must be the registry's keys, in order."""
    from mpc.node.computations import COMPUTATIONS

    assert tuple(REGISTRY) == COMPUTATIONS
    assert all(REGISTRY[c].name == c for c in COMPUTATIONS)


@pytest.mark.parametrize("scheme", ["additive", "shamir"])
def test_malicious_owner_group_matrix_caught_under_mpc(scheme):
    """T28: the owner inputs e_t + k e_d (a row that counts k times in group d) or a row of
    two ones: check_onehot raises OneHotError on every party; a valid matrix passes."""
    from protocols.apps.fraud import OneHotError, check_onehot

    K = 4
    good = np.eye(K, dtype=np.int64)[np.arange(30) % K]
    bad1 = good.copy()
    bad1[7, 3] += 5  # e_t + k e_d
    bad2 = good.copy()
    bad2[11] = [1, 1, 0, 0]
    bad3 = good.copy()
    bad3[3] = [2, -1, 0, 0]  # sums to 1, entries not in {0, 1}
    dom = Mersenne127() if scheme == "shamir" else None
    for G, ok in ((good, True), (bad1, False), (bad2, False), (bad3, False)):
        async def job(s, G=G):
            sh = await core.input(s, s.public(G) if s.pid == 0 else None, 0)
            before = s.stats.rounds
            try:
                await check_onehot(s, sh)
            except OneHotError:
                return "caught"
            return "passed", s.stats.rounds - before

        got = mpc.run_local(3, job, scheme=scheme, domain=dom).results
        if ok:  # Rounds: 3 over Z_2^64, 4 over GF(p) (the mask's product)
            assert got == [("passed", 3 if scheme == "additive" else 4)] * 3, got
        else:
            assert got == ["caught"] * 3, (G.tolist()[:12], got)


def test_dp_aggregate_clips_under_mpc_and_adds_noise(signer):
    """aggregate_sum with agreed DP terms: every party's rows clipped to its policy bounds
    under MPC, totals and count released with discrete Laplace noise of the stated scale."""
    cfg, key = signer
    rng = np.random.default_rng(5)
    parts = [rng.uniform(0, 10, size=(40 + 5 * i, 1)).round(2) for i in range(3)]
    parts[1][0, 0] = 10_000.0  # an outlier: clipped to bank1's bound 20
    bounds = {0: [[0, 10]], 1: [[0, 20]], 2: [[0, 10]]}
    m = sign_manifest({"computation": "aggregate_sum", "idempotency_key": "k",
                       "recipients": ["analyst"], "consortium": "demo", "not_after": 4102444800,
                       "inputs": {f"bank{i}": {"source": "tx", "columns": ["a"]}
                                  for i in range(3)}}, key)
    terms = {"epsilon": 1000.0, "delta": 0.0, "mechanism": "laplace", "bounds": bounds}

    async def job(s):
        ctx = JobContext(s, m, ["bank0", "bank1", "bank2"], parts[s.pid], None, dp=terms)
        outs = await REGISTRY["aggregate_sum"].run(ctx)
        got = {}
        for name, o in outs.items():
            (v,) = await core.open(s, o.share)
            got[name] = FixedPoint(s.domain, o.f).decode(v)
        return got

    got = mpc.run_local(3, job).results[0]
    clipped = sum(np.clip(p, 0, b[0][1]).sum() for p, b in zip(parts, bounds.values(),
                                                              strict=True))
    # at eps 1000 split in 2 (sensitivity 20): noise std ~ 0.06; the outlier would add 9980
    assert abs(got["sum"][0] - clipped) < 1.0, (got, clipped)
    assert abs(got["count"][0] - 135) <= 2
    assert got["epsilon"][0] == pytest.approx(1000.0)
    assert 0 < got["noise_std"][0] < 0.2


@pytest.mark.parametrize("scheme", ["additive", "shamir"])
def test_horizontal_fraud_aggregate(signer, scheme):
    """Every bank its own transactions (same two features) and its own merchant keys: the
    released counts are over the union of all banks' rows (k on size and flagged count)."""
    cfg, key = signer
    rng = np.random.default_rng(8)
    coef, icpt = [1.0, -0.5], -0.25
    X = [rng.normal(size=(30 + 7 * i, 2)).round(3) for i in range(3)]
    g = [rng.choice([3, 5, 7], size=len(x), p=[0.5, 0.4, 0.1]) for x in X]
    params = {"coef": coef, "intercept": icpt, "threshold": 0.5, "partition": "horizontal",
              "group_column": "merchant", "groups": GROUPS, "k_min": 3}
    m = sign_manifest({"computation": "fraud_aggregate", "idempotency_key": "h",
                       "recipients": ["analyst"], "parameters": params,
                       "consortium": "demo", "not_after": 4102444800,
                       "inputs": {f"bank{i}": {"source": "tx", "columns": ["a", "b"]}
                                  for i in range(3)}}, key)
    REGISTRY["fraud_aggregate"].check_parameters(m, cfg)
    assert REGISTRY["fraud_aggregate"].extras(m, "bank2") == ["merchant"]
    res = _run(m, X, [{"merchant": gi.astype(float)} for gi in g], scheme=scheme)
    out = finish_outputs("fraud_aggregate", res[0], params)["by_group"]
    z = np.concatenate(X) @ coef + icpt
    assert np.min(np.abs(z)) > 1e-3
    ga, flags = np.concatenate(g), z > 0
    for k in GROUPS:
        n, f = int((ga == k).sum()), int(flags[ga == k].sum())
        assert out[str(k)] == (f if n >= 3 and f >= 3 else None), (k, out)
    assert any(v is not None for v in out.values()) and out["9"] is None
    bad = sign_manifest({**m.body, "parameters": {**params, "owner": "bank0"}}, key)
    with pytest.raises(JobParameterError, match="owner"):
        REGISTRY["fraud_aggregate"].check_parameters(bad, cfg)
