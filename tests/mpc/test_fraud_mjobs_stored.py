"""The vertical fraud_aggregate with a stored model and security = "malicious" (issue 16), all
parties in one process with real ModelStores: a model stored by a malicious job (verified,
then [w] saved at every party) gives the exact k-suppressed counts of the public model;
parties whose stored shares belong to different training jobs fail the job alike with
model.store, before any value is computed. (On main: security.unsupported.)"""

from types import SimpleNamespace

import numpy as np
import pytest
from malicious_helpers import run
from test_jobs import COEF, GROUPS, INTERCEPT, _data, _manifest, signer  # noqa: F401 (signer: a fixture)

from mpc.node.jobs import REGISTRY, JobContext, finish_outputs
from mpc.node.manifest import sign_manifest
from mpc.node.models import ModelStore, ModelStoreError
from protocols import malicious as mal
from protocols.arith.fixedpoint import FixedPoint

pytestmark = pytest.mark.timeout(120)

F = 16
PARAMS = {"owner": "bank0", "model": "m", "threshold": 0.5, "group_column": "merchant",
          "groups": GROUPS, "k_min": 1}


def _stores(tmp_path):
    return [ModelStore(tmp_path / f"p{i}", binding={"consortium": "demo", "party": i, "n": 3,
                                                    "t": 1}) for i in range(3)]


async def _train_and_store(s, store, job_id):
    """A stand-in for the malicious training job: the model's encoding input by party 0 as an
    MShare, verified, then this party's [w] saved as the node does (security='malicious')."""
    enc = np.rint(np.append(COEF, INTERCEPT) * 2**F).astype(np.int64)
    w = await mal.input_unchecked(s.child("train"), s.domain.from_int(enc) if s.pid == 0 else None,
                                  0, (4,))
    await mal.verify(s)
    sm = SimpleNamespace(model="logistic", f=F, n_features=3, coef=w[:3], intercept=w[3])
    store.save("m", sm, s.domain, job_id=job_id, analyst="00", security="malicious")


def _job(m, stores, job_ids):
    X0, X1, g, _ = _data()
    parts, extras = [X0, X1, None], [{"merchant": g.astype(float)}, {}, {}]

    async def job(s):
        await _train_and_store(s, stores[s.pid], job_ids[s.pid])
        ctx = JobContext(s, m, ["bank0", "bank1", "bank2"], parts[s.pid], None,
                         extra=extras[s.pid], k_floor=1, models=stores[s.pid])
        outs = await REGISTRY["fraud_aggregate"].run(ctx)
        got = {}
        for name, o in outs.items():  # what the analyst reconstructs, after the verification
            (v,) = await mal.open(s, o.share)
            got[name] = FixedPoint(s.domain, o.f).decode(v)
        return got

    return job


def test_stored_model_aggregate_exact_counts(signer, tmp_path):  # noqa: F811
    _, _, g, z = _data()
    m = sign_manifest(_manifest("fraud_aggregate", PARAMS), signer[1])
    res, errs, _ = run(_job(m, _stores(tmp_path), ["train"] * 3))
    assert errs == [None] * 3, errs
    out = finish_outputs("fraud_aggregate", res[0], PARAMS)["by_group"]
    want = {str(q): (int((z[g == q] > 0).sum()) if (g == q).sum() >= 1 and (z[g == q] > 0).sum() >= 1
                     else None) for q in GROUPS}
    assert out == want, (out, want)


def test_shares_of_different_training_jobs_refused_everywhere(signer, tmp_path):  # noqa: F811
    m = sign_manifest(_manifest("fraud_aggregate", PARAMS), signer[1])
    res, errs, _ = run(_job(m, _stores(tmp_path), ["train", "train", "retrained"]))
    for e in errs:
        assert isinstance(e, ModelStoreError) and e.code == "model.store", errs
        assert "different stored models" in str(e)
