"""The job registry's fraud computations, all parties in one process (fast); the daemons'
end-to-end runs are in test_node.py."""

import numpy as np
import pytest

import mpc
from mpc.node.config import load_config, write_consortium
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
    for k in GROUPS:
        want = int(flags[g == k].sum()) if sizes[k] >= 5 else None
        assert out[str(k)] == want, (k, out)
    assert res[0]["counts"][GROUPS.index(7)] == 0  # a suppressed count is never formed


def test_policy_floor_wins_over_a_smaller_k_min(signer):
    cfg, key = signer
    X0, X1, g, z = _data()
    params = {"owner": "bank0", "coef": COEF, "intercept": INTERCEPT,
              "group_column": "merchant", "groups": GROUPS, "k_min": 2}
    m = sign_manifest(_manifest("fraud_aggregate", params), key)
    big = int(max((g == k).sum() for k in GROUPS))
    res = _run(m, [X0, X1, None], [{"merchant": g.astype(float)}, {}, {}], k_floor=big)
    out = finish_outputs("fraud_aggregate", res[0], params)["by_group"]
    assert [k for k, v in out.items() if v is not None] == \
        [str(k) for k in GROUPS if (g == k).sum() >= big]


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
])
def test_fraud_manifests_checked(signer, computation, params, recipients, match):
    cfg, key = signer
    m = sign_manifest(_manifest(computation, params, recipients), key)
    with pytest.raises(JobParameterError, match=match):
        REGISTRY[computation].check_parameters(m, cfg)


def test_group_keys_outside_the_public_set_refused_at_load():
    from mpc.node.jobs import JobDataError

    spec = REGISTRY["fraud_aggregate"]

    class M:
        computation = "fraud_aggregate"
        parameters = {"owner": "bank0", "group_column": "m", "groups": [1, 2]}

    with pytest.raises(JobDataError, match="row 2") as e:
        spec.check_data(M, "bank0", np.zeros((3, 1)), {"m": np.array([1.0, 5.0, 2.0])})
    assert e.value.code == "source.groups" and "5" not in str(e.value)
    assert spec.extras(M, "bank0") == ["m"] and spec.extras(M, "bank1") == []


def test_computation_names_match_the_registry():
    """config writes mpc.node.computations.COMPUTATIONS into demo policies without importing
    the job runners: the list must be the registry's keys, in order."""
    from mpc.node.computations import COMPUTATIONS

    assert tuple(REGISTRY) == COMPUTATIONS
    assert all(REGISTRY[c].name == c for c in COMPUTATIONS)
