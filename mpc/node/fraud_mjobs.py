"""fraud_score and fraud_aggregate (vertical, public model) with consortium.security =
"malicious" (issue 16): protocols.apps.fraud_malicious, whose banks' inputs are range-checked
and whose group matrix is checked one-hot under MPC with checked products; outputs are
MShares, verified before delivery (mpc.node.checked)."""

from __future__ import annotations

import numpy as np

from mpc.node.jobs import JobContext, JobParameterError, Output
from protocols.arith.fixedpoint import DEFAULT_F
from protocols.errors import MaliciousUnsupportedError


def _public_model(ctx: JobContext) -> tuple[np.ndarray, float]:
    p = ctx.manifest.parameters
    if "model" in p:
        raise MaliciousUnsupportedError("parameters.model: stored models are not supported with "
                                        "security = 'malicious' yet")
    return np.asarray(p["coef"], dtype=np.float64), float(p.get("intercept", 0.0))


async def fraud_score(ctx: JobContext) -> dict[str, Output]:
    from protocols.apps import fraud_malicious as fm

    p = ctx.manifest.parameters
    owner = ctx.names.index(p["owner"])
    ctx.log("score", rows=None if ctx.X is None else ctx.X.shape[0], security="malicious")
    sc = await fm.score(
        ctx.s, _public_model(ctx), ctx.X, owner=owner, threshold=float(p.get("threshold", 0.5)),
        reveal_to=owner, proba=bool(p.get("proba", True)),
        reveal_scores=bool(p.get("reveal_scores", False)), sigmoid=p.get("sigmoid", "piecewise"))
    out = {"flags": Output(None, 0, sc.revealed_flags)}
    if p.get("reveal_scores"):
        out["scores"] = Output(None, DEFAULT_F, sc.revealed_scores)
    return out


async def fraud_aggregate(ctx: JobContext) -> dict[str, Output]:
    from mpc.node.fraud_jobs import horizontal
    from protocols.apps import fraud_malicious as fm

    s, p = ctx.s, ctx.manifest.parameters
    if horizontal(ctx.manifest):
        raise MaliciousUnsupportedError("the horizontal fraud_aggregate has no malicious version yet")
    if ctx.dp is not None:
        raise MaliciousUnsupportedError("DP noise is not supported with security = 'malicious' yet")
    owner = ctx.names.index(p["owner"])
    groups = np.asarray(p["groups"], dtype=np.int64)
    k = max(int(p.get("k_min", 1)), int(ctx.k_floor))
    ctx.log("score", rows=None if ctx.X is None else ctx.X.shape[0], groups=len(groups),
            security="malicious")
    sc = await fm.score(s, _public_model(ctx), ctx.X, owner=owner,
                        threshold=float(p.get("threshold", 0.5)), reveal_to=owner,
                        proba=bool(p.get("proba", True)), reveal_scores=False, _reveal=False)
    if sc.flags is None:  # pragma: no cover (a threshold is always given)
        raise JobParameterError("fraud_aggregate needs a threshold")
    G_local = None
    if s.pid == owner:
        keys = ctx.extra[p["group_column"]].astype(np.int64)
        G_local = s.public((keys[:, None] == groups[None, :]).astype(np.int64))
    ctx.log("group", rows=sc.flags.shape[0], groups=len(groups))
    kept, released = await fm.group_counts(s, sc.flags, G_local, owner, len(groups), k)
    return {"counts": Output(kept, 0), "released": Output(released, 0)}  # type: ignore[arg-type]
