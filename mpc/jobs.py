"""The registry of named computations a node may run.

Each entry says which data it needs from each party (columns, and a label column for the
models), validates its parameters, and runs on a Session, returning named outputs as Shares
with their fixed-point scale. It never reveals anything itself: the node delivers each
output to the manifest's recipients only (`core.reveal_to` to a party, or every party's
share sealed to the analyst's key), so a node never sees an output not addressed to it.

    aggregate_sum     per-column totals over all parties' rows, and the row count
    aggregate_mean    the same two outputs; the recipient divides (it learns sum and count)
    linear_regression, ridge_regression, logistic_regression
                      protocols.ml.train on horizontally partitioned rows (features + label)
    fraud_score, fraud_aggregate
                      protocols.fraud (scores / flagged counts per group, k_min enforced)

The model and fraud computations call the ML layer (protocols.ml, protocols.fraud). If that
layer is not installed in this build, they are registered but unavailable: a manifest naming
one is refused with `job.unavailable` on every node, before any data is read.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mpc.config import NodeConfig
from mpc.manifest import Manifest
from network.errors import SmpcError
from protocols import core
from protocols.arith.fixedpoint import DEFAULT_F, FixedPoint
from protocols.session import Session, Share


class JobUnavailableError(SmpcError):
    """The computation is registered but cannot run in this build (a layer is missing)."""

    code = "job.unavailable"


class JobParameterError(SmpcError):
    """The manifest's parameters or inputs do not fit the computation."""

    code = "job.parameters"


@dataclass
class Output:
    share: Share
    f: int  # fractional bits: the recipient decodes v / 2^f


@dataclass
class JobContext:
    s: Session
    manifest: Manifest
    names: list[str]
    X: np.ndarray | None  # this party's feature columns (rows, d), or None
    y: np.ndarray | None  # this party's label column (rows,), or None
    log: Callable[..., None] = lambda step, **kw: None


@dataclass
class JobSpec:
    name: str
    run: Callable[[JobContext], Awaitable[dict[str, Output]]]
    needs_label: bool = False
    every_party_inputs: bool = True
    requires: tuple[str, ...] = ()
    params: dict[str, type | tuple] = field(default_factory=dict)

    def available(self) -> str | None:
        """None if runnable, else why not."""
        for mod in self.requires:
            try:
                importlib.import_module(mod)
            except ImportError as e:
                return f"{self.name} needs {mod}, which this build lacks ({e})"
        return None

    def check_parameters(self, m: Manifest, cfg: NodeConfig) -> None:
        why = self.available()
        if why:
            raise JobUnavailableError(why)
        for k, v in m.parameters.items():
            if k not in self.params:
                raise JobParameterError(f"parameters.{k}: not a parameter of {self.name} "
                                        f"(known: {sorted(self.params)})")
            typ = self.params[k]
            if isinstance(v, bool) != (typ is bool) or not isinstance(v, typ):
                raise JobParameterError(f"parameters.{k}: wrong type {type(v).__name__}")
        widths = {p: len(i.get("columns", [])) for p, i in m.inputs.items()}
        if len(set(widths.values())) > 1:
            raise JobParameterError(f"inputs: every party must contribute the same number of "
                                    f"columns (horizontal partition), got {widths}")
        for p, i in m.inputs.items():
            if self.needs_label and "label" not in i:
                raise JobParameterError(f"inputs.{p}.label: {self.name} needs a label column")
            if not i.get("columns"):
                raise JobParameterError(f"inputs.{p}.columns: {self.name} needs feature columns")


async def _input_all(s: Session, x: np.ndarray, shape: tuple[int, ...]) -> list[Share]:
    """Every party secret-shares its own array (all of one public shape), in one round."""
    async def one(owner: int) -> Share:
        return await core.input(s.child(f"in{owner}"), x if owner == s.pid else None, owner)

    shares = await asyncio.gather(*(one(o) for o in range(s.n)))
    for sh in shares:
        if sh.shape != shape:
            from protocols.errors import ShapeMismatch

            raise ShapeMismatch(f"a party input shape {sh.shape}, expected {shape}")
    return list(shares)


async def _aggregate(ctx: JobContext) -> dict[str, Output]:
    """Column totals and the row count over all parties. Rounds: 1 (inputs in parallel)."""
    s = ctx.s
    fp = FixedPoint(s.domain, DEFAULT_F)
    d = ctx.X.shape[1]
    sums = fp.encode(ctx.X.sum(axis=0))
    count = s.domain.from_int(np.array([ctx.X.shape[0]], dtype=np.int64))
    ctx.log("input", shape=[d + 1])
    sum_shares = await _input_all(s.child("sum"), sums, (d,))
    cnt_shares = await _input_all(s.child("count"), count, (1,))
    total = sum_shares[0]
    for sh in sum_shares[1:]:
        total = total + sh
    cnt = cnt_shares[0]
    for sh in cnt_shares[1:]:
        cnt = cnt + sh
    return {"sum": Output(total, DEFAULT_F), "count": Output(cnt, 0)}


def _ml_job(model: str) -> Callable[[JobContext], Awaitable[dict[str, Output]]]:
    async def run(ctx: JobContext) -> dict[str, Output]:
        from protocols import ml

        hyper = dict(ctx.manifest.parameters)
        if isinstance(hyper.get("class_weight"), dict):  # TOML/JSON keys are strings
            hyper["class_weight"] = {int(k): float(v) for k, v in hyper["class_weight"].items()}
        ctx.log("train", model=model, shape=list(ctx.X.shape))
        sm = await ml.train(ctx.s, model, ctx.X, ctx.y, partition="horizontal", **hyper)
        f = getattr(sm, "f", DEFAULT_F)
        return {"coef": Output(sm.coef, f), "intercept": Output(sm.intercept, f)}

    return run


async def _fraud_unwired(ctx: JobContext) -> dict[str, Output]:
    raise JobUnavailableError(f"{ctx.manifest.computation}: the node does not yet wire "
                              "protocols.fraud (its session API returns revealed values, not "
                              "shares for delivery)")


#: protocols.ml.train hyperparameters (train itself rejects ones its solver does not take)
_ML_PARAMS: dict[str, Any] = {
    "alpha": (int, float), "solver": str, "solver_iters": int, "f_solve": int,
    "feature_scale": list, "l2": (int, float), "batch_size": int, "epochs": int,
    "lr": (int, float), "schedule": str, "lr_decay": (int, float), "class_weight": (str, dict),
    "sigmoid": str, "shuffle_seed": int, "standardize": bool,
}

REGISTRY: dict[str, JobSpec] = {
    "aggregate_sum": JobSpec("aggregate_sum", _aggregate),
    "aggregate_mean": JobSpec("aggregate_mean", _aggregate),
    "linear_regression": JobSpec("linear_regression", _ml_job("linear"), needs_label=True,
                                 requires=("protocols.ml",), params=_ML_PARAMS),
    "ridge_regression": JobSpec("ridge_regression", _ml_job("ridge"), needs_label=True,
                                requires=("protocols.ml",), params=_ML_PARAMS),
    "logistic_regression": JobSpec("logistic_regression", _ml_job("logistic"), needs_label=True,
                                   requires=("protocols.ml",), params=_ML_PARAMS),
    "fraud_score": JobSpec("fraud_score", _fraud_unwired, requires=("protocols.fraud",),
                           params={"k_min": int}),
    "fraud_aggregate": JobSpec("fraud_aggregate", _fraud_unwired, requires=("protocols.fraud",),
                               params={"k_min": int}),
}


def finish_outputs(computation: str, values: dict[str, np.ndarray]) -> dict[str, Any]:
    """Post-processing at the recipient (plaintext, after reconstruction and decoding)."""
    out: dict[str, Any] = {k: v.tolist() for k, v in values.items()}
    if computation == "aggregate_mean" and "sum" in values and "count" in values:
        c = float(values["count"].reshape(-1)[0])
        out["mean"] = (values["sum"] / c).tolist() if c else None
    return out
