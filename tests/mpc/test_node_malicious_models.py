"""Issue 16: stored models with consortium.security = "malicious" (Shamir, n = 2t + 1), three
real daemons. On main a malicious training job could not store its model
(security.unsupported) and a malicious fraud job could not name one, so a bank consortium
could not train once and score later.

(1) a malicious logistic_regression with store_model keeps only shares (verified before the
    save, marked "malicious"); fraud_score with parameters.model gives bank0 the flags of
    the same model trained with its coefficients revealed (rows at the threshold aside:
    the trainings' probabilistic truncations round differently);
(2) a node whose stored share is off by 1.0 (tests/mpc/cheating_node.py "modelshift": its
    ModelStore returns share + delta) is caught with security.cheating_detected on every
    honest node, nothing released;
(3) a model stored by a semi-honest job is refused in a malicious job with model.security on
    every node, before any value is computed.
"""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from test_node import FraudCluster
from test_node_malicious import _mal_cluster

from mpc.node.client import JobFailedError
from mpc.node.config import load_config
from protocols.arith.mersenne127 import Mersenne127

pytestmark = pytest.mark.timeout(240)

COLS = {0: ["amount", "hour"], 1: ["seen"], 2: ["velocity"]}
HYPER = {"partition": "vertical", "id_column": "txn_id", "epochs": 2, "batch_size": 30,
         "lr": 0.5, "shuffle_seed": 0}


def _label(cl):
    """bank0's rows get a label y = [z > 0] (the fraud data's own model)."""
    text = (cl.dir / "fraud0.csv").read_text().split()
    by_id_z = dict(zip(cl.ids, cl.z, strict=True))
    rows = [text[0] + ",y"] + [f"{r},{int(by_id_z[int(r.split(',')[0])] > 0)}" for r in text[1:]]
    (cl.dir / "fraud0.csv").write_text("\n".join(rows) + "\n")


def _train(key, **params):
    inputs = {f"bank{b}": {"source": "fraud", "columns": c} for b, c in COLS.items()}
    inputs["bank0"]["label"] = "y"
    return {"computation": "logistic_regression", "idempotency_key": key,
            "recipients": ["analyst"], "parameters": {**HYPER, **params}, "inputs": inputs}


def _score(key, model):
    return {"computation": "fraud_score", "idempotency_key": key, "recipients": ["bank0"],
            "parameters": {"owner": "bank0", "model": model, "threshold": 0.5,
                           "id_column": "txn_id"},
            "inputs": {f"bank{b}": {"source": "fraud", "columns": c} for b, c in COLS.items()}}


def _cols(cl, b, names):
    lines = (cl.dir / f"fraud{b}.csv").read_text().split()
    head = lines[0].split(",")
    rows = sorted((r.split(",") for r in lines[1:]), key=lambda r: int(r[0]))
    return np.array([[float(r[head.index(n)]) for n in names] for r in rows])


def _store_semi_honest(cl, name):
    """What a semi-honest job of this consortium would have stored under `name` (a record
    with security = "semi-honest", bound to each node): shares of a small model."""
    from mpc.node.models import ModelStore, model_binding

    D = Mersenne127()
    rng = np.random.default_rng(3)
    coef = D.from_int(rng.integers(-2**16, 2**16, size=4))  # any field elements: never opened
    for i in range(3):
        cfg = load_config(cl.info["configs"][i])
        store = ModelStore(cfg.state_dir / "models", binding=model_binding(cfg))
        sm = SimpleNamespace(model="logistic", f=16, n_features=4,
                             coef=SimpleNamespace(data=coef, shape=(4,)),
                             intercept=SimpleNamespace(data=D.from_int(np.array(7))))
        store.save(name, sm, D, job_id="semi-honest-job", analyst="00", security="semi-honest")


def test_malicious_store_then_score_and_semi_honest_model_refused(tmp_path):
    cl = _mal_cluster(tmp_path, cls=FraudCluster)
    try:
        _label(cl)
        c = cl.client()
        stored = c.result(c.submit(_train("store", store_model="mfraud")), timeout=150)
        assert stored.outputs == {}  # nothing released
        for i in range(3):
            f = cl.dir / f"bank{i}-state" / "models" / "mfraud.json"
            assert (f.stat().st_mode & 0o777) == 0o600
            rec = json.loads(f.read_text())
            assert rec["security"] == "malicious" and "mac" not in json.dumps(rec).lower()
            assert rec["binding"]["party"] == i
        job = c.submit(_score("score", "mfraud"))
        c.result(job, timeout=150)
        flags = np.asarray(cl.result_of(0, job)[1]["result"]["outputs"]["flags"]["values"])
        for i in (1, 2):  # the flags are bank0's only
            outs = cl.result_of(i, job)[1]["result"]["outputs"]
            assert all("values" not in o for o in outs.values())
        # the reference: the same training with the coefficients revealed to the analyst
        shown = c.result(c.submit({**_train("show"), "recipients": ["analyst"]}), timeout=150)
        coef = np.asarray(shown.outputs["coef"])
        icpt = float(np.asarray(shown.outputs["intercept"]).reshape(-1)[0])
        X = np.column_stack([_cols(cl, 0, ["amount", "hour"]), _cols(cl, 1, ["seen"]),
                             _cols(cl, 2, ["velocity"])])
        z = X @ coef + icpt
        far = np.abs(z) > 0.05
        assert far.sum() >= len(z) - 5
        assert np.array_equal(flags[far], (z[far] > 0).astype(int))
        assert 0 < flags.sum() < len(flags)
        # (3) a semi-honest job's model: refused with model.security on every node
        _store_semi_honest(cl, "plain")
        job = c.submit(_score("plain", "plain"))
        with pytest.raises(JobFailedError) as e:
            c.result(job, timeout=60)
        for i in range(3):
            st = cl.status_of(i, job)
            assert st["status"] == "failed" and st["code"] == "model.security", st
            assert cl.result_of(i, job)[0] == 409
        assert all(r[1] == "model.security" for r in e.value.reasons.values()), e.value.reasons
    finally:
        cl.stop()


def test_a_shifted_stored_share_is_caught_nothing_released(tmp_path):
    """bank2 (cheating_node.py modelshift) scores with its stored share of coef[0] plus 1.0:
    the honest banks' shares fix the model; the shift is an additive error on the load's
    authentication (chida18.authenticate), caught on every honest node before bank0 sees
    any flag."""
    cl = _mal_cluster(tmp_path, cls=FraudCluster, cheat_prefix="modelshift")
    try:
        _label(cl)
        c = cl.client()
        c.result(c.submit(_train("store", store_model="mfraud")), timeout=150)
        job = c.submit(_score("score", "mfraud"))
        with pytest.raises(JobFailedError):
            c.result(job, timeout=150)
        for i in (0, 1):  # the honest nodes
            st = cl.status_of(i, job)
            assert st["status"] == "failed" and st["code"] == "security.cheating_detected", st
            assert cl.result_of(i, job)[0] == 409  # nothing released: no flags at bank0
    finally:
        cl.stop()
