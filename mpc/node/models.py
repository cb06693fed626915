"""Shared models that stay shared: each node keeps its own share of a trained model.

A logistic_regression / linear_regression / ridge_regression job with
`parameters.store_model = "name"` releases nothing: every node writes its share of the
coefficients and intercept to `state_dir/models/<name>.json` (mode 0600, written to a
temporary file, fsynced and renamed, so a crash leaves the old file or the new one). A later
fraud_score / fraud_aggregate job names the model (`parameters.model = "name"`) instead of
public coefficients; every node loads its share and the scores are computed over shares
(protocols.apps.fraud.score with a SharedModel). Nobody ever sees the coefficients unless a
later, policy-allowed job reveals them.

A share alone is uniformly distributed: the file tells its holder nothing. The record keeps
the public metadata (model kind, fixed-point bits, feature count, the training job, the
analyst) so that a node can refuse a model that does not fit the job.

Issue 16 (consortium.security = "malicious"): a malicious training job stores its shares
only after the batched check of [Chida et al., CRYPTO 2018] passed (the runner's
`verify_before_release` step, taken before the save), and the record says so
(`security = "malicious"`). Only the Shamir shares [w] are kept, not the MAC shares [r*w]:
the MAC key r of a job is opened by its verification, so an old [r*w] authenticates
nothing. A malicious job loads only a model stored by a malicious job (ModelSecurityError,
`model.security`, otherwise: a semi-honest job's model carries no integrity guarantee) and
gives it fresh MACs under its own key (protocols.malicious.chida18.authenticate). The
record is bound to the node that wrote it (party index, consortium id, n, t: a share
copied from another node or another consortium is refused) and to its name.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from mpc.node import codes
from network.errors import SmpcError

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class ModelStoreError(SmpcError):
    """A stored model is missing, malformed, or its name is taken by another job."""

    code = codes.MODEL_STORE


def model_binding(cfg) -> dict:
    """What a stored share is bound to (mpc.node.config.NodeConfig): the consortium id, this
    node's party index (its Shamir point) and n, t. A share is meaningless at another index
    or with another threshold; the check refuses a file copied from another node."""
    return {"consortium": str(cfg.consortium_id), "party": int(cfg.index), "n": int(cfg.n),
            "t": None if cfg.t is None else int(cfg.t)}


def valid_name(name: object) -> bool:
    return isinstance(name, str) and bool(NAME.match(name)) and not name.startswith(".")


class ModelSecurityError(ModelStoreError):
    """A malicious-security job named a model stored by a semi-honest job (no integrity)."""

    code = codes.MODEL_SECURITY


class ModelStore:
    """This node's stored model shares. `binding` (the runner's: party index, consortium
    id, n, t) is written into every record and, when a record has one, must match at load."""

    def __init__(self, folder: str | os.PathLike, *, binding: dict | None = None):
        self.dir = Path(folder)
        self.binding = dict(binding) if binding else None

    def path(self, name: str) -> Path:
        if not valid_name(name):
            raise ModelStoreError("a model name is 1-64 letters, digits, '_', '-' or '.'")
        return self.dir / f"{name}.json"

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def save(self, name: str, model, domain, *, job_id: str, analyst: str,
             security: str = "semi-honest") -> None:
        """Write this node's share of `model` (a protocols.apps.ml SharedModel, or an
        MSharedModel of a malicious job, verified before this call: only its [w] shares are
        written)."""
        p = self.path(name)
        if p.exists():
            old = json.loads(p.read_text())
            if old.get("job_id") != job_id:
                raise ModelStoreError("a stored model of that name exists (from another job)")
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        from mpc.node.checked import share_data

        coef = np.ascontiguousarray(domain.to_wire(share_data(model.coef)))
        icpt = np.ascontiguousarray(domain.to_wire(np.atleast_1d(share_data(model.intercept))))
        rec = {"name": name, "model": model.model, "f": int(model.f),
               "n_features": int(model.n_features), "job_id": job_id, "analyst": analyst,
               "domain": repr(domain), "wire_dtype": str(coef.dtype),
               "coef": coef.tobytes().hex(), "coef_shape": list(model.coef.shape),
               "intercept": icpt.tobytes().hex(), "security": security}
        if self.binding is not None:
            rec["binding"] = self.binding
        tmp = p.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(rec))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)

    def load(self, name: str, s):
        """This node's share of the stored model as a SharedModel of session s (plain
        Shares). With s.security == "malicious" only a model stored by a malicious job
        (ModelSecurityError otherwise); the caller authenticates it under the job's key."""
        from protocols.apps.ml._base import SharedModel
        from protocols.session import Share

        p = self.path(name)
        try:
            rec = json.loads(p.read_text())
            if not isinstance(rec, dict):
                raise TypeError("not a record")
            if s.security == "malicious" and rec.get("security") != "malicious":
                raise ModelSecurityError(
                    f"the stored model {name!r} was trained with security = "
                    f"{rec.get('security', 'semi-honest')!r}: a malicious-security job uses "
                    "only models stored by a malicious-security job")
            if rec.get("name") != name:
                raise ModelStoreError("the stored model file holds another model")
            if "binding" in rec and rec["binding"] != self.binding:
                raise ModelStoreError("the stored model was written by another node or "
                                      "consortium")
            if rec["domain"] != repr(s.domain):
                raise ModelStoreError("the stored model was trained in another domain")
            dt = np.dtype(rec["wire_dtype"])
            shape = tuple(rec["coef_shape"])
            coef = s.domain.from_wire(np.frombuffer(bytes.fromhex(rec["coef"]), dtype=dt)
                                      .reshape(s.domain.wire_shape(shape)), shape)
            icpt = s.domain.from_wire(np.frombuffer(bytes.fromhex(rec["intercept"]), dtype=dt)
                                      .reshape(s.domain.wire_shape((1,))), (1,))
        except FileNotFoundError:
            raise ModelStoreError("no stored model of that name on this node") from None
        except (ValueError, KeyError, TypeError) as e:
            raise ModelStoreError(f"the stored model file is malformed ({type(e).__name__})") \
                from None
        return SharedModel(rec["model"], Share(coef, s), Share(icpt.reshape(()), s),
                           int(rec["n_features"]), int(rec["f"]),
                           {"job_id": rec["job_id"], "stored": True,
                            "security": rec.get("security", "semi-honest"),
                            "coef_shape": shape})
