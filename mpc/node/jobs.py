"""The registry of named computations a node may run.

Each entry says which data it needs from each party (columns, and a label column for the
models), validates its parameters, and runs on a Session, returning named outputs as Shares
with their fixed-point scale. It never reveals anything itself: the node delivers each
output to the manifest's recipients only (`core.reveal_to` to a party, or every party's
share sealed to the analyst's key), so a node never sees an output not addressed to it.

    aggregate_sum     per-column totals over all parties' rows, and the row count
    aggregate_mean    the same two outputs; the recipient divides (it learns sum and count)
    linear_regression, ridge_regression, logistic_regression
                      protocols.apps.ml.train; parameters.partition = "horizontal" (default: every
                      party its own rows, features + label) or "vertical" (the same rows,
                      aligned; each party its own columns, exactly one party the label)
    fraud_score       protocols.fraud.score over the owner's transactions with the features
                      split across banks (vertical); the model is public, in the manifest
                      (parameters.coef over every contributing party's columns in party
                      order, parameters.intercept). Flags (and, if asked, scores) go to the
                      owner only: recipients must be exactly [owner].
    fraud_aggregate   the same scoring, then per group (parameters.groups: the public set of
                      keys; each row's key is the owner's column parameters.group_column and
                      stays private) the number of flagged rows and the group size, computed
                      over shares. Suppression is decided over shares too: only groups with
                      at least k members are released, k = max(parameters.k_min, every
                      node's policy.min_group_size) (agreed before compute). Recipients get
                      `counts` (0 where suppressed) and `released` (0/1 per group); a
                      suppressed group's count is never reconstructed anywhere.

Rows of a vertical job are aligned by a shared id: with parameters.id_column every party
sorts its rows by that column and the nodes compare a digest of the sorted ids before any
computation (`agreement.alignment` if they differ); without it, the sources' row order.

A stored shared model (SharedModel kept in shares between jobs) is not wired yet: fraud jobs
take public coefficients (e.g. the ones a logistic_regression job released to the analyst).

The model and fraud computations call the ML layer (protocols.apps.ml, protocols.apps.fraud). If that
layer is not installed in this build, they are registered but unavailable: a manifest naming
one is refused with `job.unavailable` on every node, before any data is read.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mpc.node import codes
from mpc.node.config import ANALYST, NodeConfig
from mpc.node.manifest import Manifest
from network.errors import SmpcError
from protocols import core
from protocols.arith.fixedpoint import DEFAULT_F, FixedPoint
from protocols.session import Session, Share

log = logging.getLogger("smpc.node.jobs")


class JobUnavailableError(SmpcError):
    """The computation is registered but cannot run in this build (a layer is missing)."""

    code = codes.JOB_UNAVAILABLE


class JobParameterError(SmpcError):
    """The manifest's parameters or inputs do not fit the computation."""

    code = codes.JOB_PARAMETERS


class JobDataError(SmpcError):
    """This party's data does not fit the job (found at load; reported in the data round)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class Output:
    """A job output: a Share the node delivers to the recipients (f fractional bits: the
    recipient decodes v / 2^f), or, when the protocol itself already revealed it to the job's
    only party recipient (fraud.score reveals flags to the querying bank), share=None and
    `revealed` = the plaintext at that recipient (None at every other node)."""

    share: Share | None
    f: int
    revealed: np.ndarray | None = None


@dataclass
class JobContext:
    s: Session
    manifest: Manifest
    names: list[str]
    X: np.ndarray | None  # this party's feature columns (rows, d), or None
    y: np.ndarray | None  # this party's label column (rows,), or None
    log: Callable[..., None] = lambda step, **kw: None
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # extra_columns, by name
    k_floor: int = 1  # the largest policy.min_group_size among the nodes (agreed)
    #: the agreed DP terms (mpc.node.policy.agree_dp), None: release exactly
    dp: dict | None = None
    #: this node's mpc.node.models.ModelStore (shared models kept between jobs)
    models: Any = None


@dataclass
class JobSpec:
    name: str
    run: Callable[[JobContext], Awaitable[dict[str, Output]]]
    needs_label: bool = False
    every_party_inputs: bool = True
    requires: tuple[str, ...] = ()
    params: dict[str, type | tuple] = field(default_factory=dict)
    #: computation-specific manifest checks (replaces the horizontal-input checks)
    validate: Callable[[Manifest, NodeConfig], None] | None = None
    #: columns a party loads beyond inputs.columns / label: (manifest, party name) -> names
    extra_columns: Callable[[Manifest, str], list[str]] | None = None
    #: checks on a party's loaded data (raise JobDataError): (manifest, party, X, extra)
    check_data: Callable[[Manifest, str, np.ndarray, dict], None] | None = None

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
        if self.validate is not None:
            self.validate(m, cfg)
            return
        _check_horizontal(self, m)

    def extras(self, m: Manifest, party: str) -> list[str]:
        return self.extra_columns(m, party) if self.extra_columns else []


def _check_horizontal(spec: JobSpec, m: Manifest) -> None:
    """Every party the same number of feature columns (and a label if the job needs one)."""
    widths = {p: len(i.get("columns", [])) for p, i in m.inputs.items()}
    if len(set(widths.values())) > 1:
        raise JobParameterError(f"inputs: every party must contribute the same number of "
                                f"columns (horizontal partition), got {widths}")
    for p, i in m.inputs.items():
        if spec.needs_label and "label" not in i:
            raise JobParameterError(f"inputs.{p}.label: {spec.name} needs a label column")
        if not i.get("columns"):
            raise JobParameterError(f"inputs.{p}.columns: {spec.name} needs feature columns")


def _check_vertical(m: Manifest, *, label: bool) -> None:
    """Columns of the same rows: every contributing party names columns; with label=True
    exactly one party names the label."""
    for p, i in m.inputs.items():
        if not i.get("columns"):
            raise JobParameterError(f"inputs.{p}.columns: {m.computation} needs feature columns")
    holders = [p for p, i in m.inputs.items() if "label" in i]
    if label and len(holders) != 1:
        raise JobParameterError(f"inputs: a vertical {m.computation} needs the label at exactly "
                                f"one party, got {holders or 'none'}")
    if not label and holders:
        raise JobParameterError(f"inputs.{holders[0]}.label: {m.computation} takes no label")


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


def _public_share(s: Session, v: np.ndarray, f: int) -> Share:
    """A sharing of a public value (every party knows it): the release states it."""
    enc = FixedPoint(s.domain, f).encode(np.atleast_1d(np.asarray(v, dtype=np.float64)))
    return Share(s.domain.zeros(enc.shape), s) + enc


async def _aggregate_dp(ctx: JobContext) -> dict[str, Output]:
    """Column totals and the row count with DP noise generated under MPC.

        X_p = party p's rows (fixed point), input by p;  lo_p, hi_p = p's policy bounds
        S = sum over rows of clip(X, lo, hi)       (protocols.comparison.clip, one ltz_mul)
        release S + DLap(Delta_j / eps'), count + DLap(1 / eps'), eps' = eps / (d + 1)
        (Gaussian: each at (eps', delta / (d + 1))), Delta_j = max_p max(|lo_pj|, |hi_pj|)

    The peers learn every party's row count (the shapes of the inputs); the recipients
    learn only the noisy totals, the noise scales and epsilon.
    """
    from protocols.apps import dp as dpm
    from protocols.comparison import clip

    s, terms = ctx.s, ctx.dp
    fp = FixedPoint(s.domain, DEFAULT_F)
    d = ctx.X.shape[1]
    bounds = terms.get("bounds", {})
    if set(bounds) != set(range(s.n)):
        raise JobDataError("policy.bounds", "a party states no bounds for its columns")
    ctx.log("input", shape=list(ctx.X.shape))

    async def one(o: int) -> Share:
        return await core.input(s.child(f"rows{o}"), fp.encode(ctx.X) if o == s.pid else None, o)

    parts = await asyncio.gather(*(one(o) for o in range(s.n)))
    if any(p.ndim != 2 or p.shape[1] != d for p in parts):
        from protocols.errors import ShapeMismatch

        raise ShapeMismatch("a party's rows do not have the job's column count")
    from protocols.session import concatenate

    X = concatenate(list(parts), 0)
    bnd = [np.asarray(bounds[o], dtype=np.float64).reshape(d, 2) for o in range(s.n)]
    lo = np.concatenate([np.broadcast_to(bnd[o][:, 0], (p.shape[0], d))
                         for o, p in enumerate(parts)])
    hi = np.concatenate([np.broadcast_to(bnd[o][:, 1], (p.shape[0], d))
                         for o, p in enumerate(parts)])
    ctx.log("clip", rows=X.shape[0])

    def enc(v: np.ndarray) -> np.ndarray:  # signed integers: clip compares them as such
        return np.round(v * 2**DEFAULT_F).astype(np.int64)

    Xc = await clip(s.child("clip"), X, enc(lo), enc(hi))
    total = Xc.sum(axis=0)
    rows = sum(p.shape[0] for p in parts)
    b = np.abs(np.stack(bnd))  # (n, d, 2)
    sens = np.maximum(np.ceil(b.max(axis=(0, 2)) * 2**DEFAULT_F), 1)  # encoded units
    k = d + 1
    noises = [dpm.calibrate(terms["mechanism"], terms["epsilon"] / k, terms["delta"] / k,
                            float(x)) for x in [*sens, 1.0]]
    ctx.log("noise", outputs=k, mechanism=terms["mechanism"])
    vals = concatenate([total, _public_share(s, [rows], 0)], 0)
    noisy_all = await dpm.add_noise(s.child("noise"), vals, noises)  # one batch, no gather
    noisy = [noisy_all[j:j + 1] for j in range(k)]
    std = np.array([nz.std() / 2**DEFAULT_F for nz in noises[:d]] + [noises[d].std()])
    return {"sum": Output(concatenate(noisy[:d], 0), DEFAULT_F),
            "count": Output(noisy[d], 0),
            "noise_std": Output(_public_share(s, std, DEFAULT_F), DEFAULT_F),
            "epsilon": Output(_public_share(s, [terms["epsilon"]], DEFAULT_F), DEFAULT_F)}


async def _aggregate(ctx: JobContext) -> dict[str, Output]:
    """Column totals and the row count over all parties. Rounds: 1 (inputs in parallel).
    With DP terms agreed (a node's [policy.dp]): `_aggregate_dp`."""
    if ctx.dp is not None:
        return await _aggregate_dp(ctx)
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
        from protocols.apps import ml

        hyper = dict(ctx.manifest.parameters)
        partition = hyper.pop("partition", "horizontal")
        hyper.pop("id_column", None)  # used at load (row alignment)
        store = hyper.pop("store_model", None)
        if isinstance(hyper.get("class_weight"), dict):  # TOML/JSON keys are strings
            hyper["class_weight"] = {int(k): float(v) for k, v in hyper["class_weight"].items()}
        ctx.log("train", model=model, partition=partition, shape=list(ctx.X.shape))
        sm = await ml.train(ctx.s, model, ctx.X, ctx.y, partition=partition, **hyper)
        f = getattr(sm, "f", DEFAULT_F)
        if store is not None:  # kept as shares at every node; nothing is released
            if ctx.models is None:
                raise JobParameterError("parameters.store_model: this node keeps no models")
            ctx.models.save(store, sm, ctx.s.domain, job_id=ctx.manifest.job_id,
                            analyst=ctx.manifest.analyst_key.hex())
            ctx.log("stored", model=store)
            return {}
        return {"coef": Output(sm.coef, f), "intercept": Output(sm.intercept, f)}

    return run


def _validate_ml(spec_name: str) -> Callable[[Manifest, NodeConfig], None]:
    def validate(m: Manifest, cfg: NodeConfig) -> None:
        partition = m.parameters.get("partition", "horizontal")
        if partition == "horizontal":
            if "id_column" in m.parameters:
                raise JobParameterError("parameters.id_column: only for partition='vertical'")
            _check_horizontal(REGISTRY[spec_name], m)
        elif partition == "vertical":
            _check_vertical(m, label=True)
        else:
            raise JobParameterError(f"parameters.partition: 'horizontal' or 'vertical', got "
                                    f"{partition!r}")
        if "store_model" in m.parameters:
            from mpc.node.models import valid_name

            if not valid_name(m.parameters["store_model"]):
                raise JobParameterError("parameters.store_model: 1-64 letters, digits, '_', "
                                        "'-' or '.'")
            if list(m.recipients) != [ANALYST]:
                raise JobParameterError("recipients: a stored model is released to nobody; "
                                        "recipients must be ['analyst'] (who gets nothing)")

    return validate


# ----------------------------------------------------------------------------- fraud ---
MAX_GROUPS = 4096


def _fraud_validate(m: Manifest, cfg: NodeConfig) -> None:
    """The fraud jobs' manifest checks (same on every node: only the manifest and the
    consortium's party names are used)."""
    p = m.parameters
    names = cfg.party_names()
    _check_vertical(m, label=False)
    owner = p.get("owner")
    if owner is None:
        raise JobParameterError("parameters.owner: name the querying bank (whose transactions)")
    if owner not in names or owner not in m.inputs:
        raise JobParameterError(f"parameters.owner: {owner!r} must be a party with inputs")
    if "model" in p:  # a stored shared model (mpc.node.models); its width is checked at run
        from mpc.node.models import valid_name

        if "coef" in p or "intercept" in p or not valid_name(p["model"]):
            raise JobParameterError("parameters.model: a stored model's name, without coef "
                                    "or intercept")
    else:
        coef = p.get("coef")
        if not coef or not all(isinstance(c, int | float) and not isinstance(c, bool)
                               for c in coef):
            raise JobParameterError("parameters.coef: a non-empty list of numbers (the public "
                                    "model), or parameters.model (a stored shared model)")
        width = sum(len(i["columns"]) for i in m.inputs.values())
        if len(coef) != width:
            raise JobParameterError(f"parameters.coef: {len(coef)} coefficients for {width} "
                                    "columns (every contributing party's columns, in party "
                                    "order)")
    proba = p.get("proba", True)
    t = float(p.get("threshold", 0.5))
    if proba and not 0 < t < 1:
        raise JobParameterError(f"parameters.threshold: a probability in (0, 1), got {t}")
    if p.get("sigmoid", "smooth") not in ("smooth", "piecewise"):
        raise JobParameterError("parameters.sigmoid: 'smooth' or 'piecewise'")
    if m.computation == "fraud_score":
        if list(m.recipients) != [owner]:
            raise JobParameterError(f"recipients: fraud_score releases per-transaction flags to "
                                    f"the querying bank only: recipients must be [{owner!r}]")
        for k in ("group_column", "groups", "k_min"):
            if k in p:
                raise JobParameterError(f"parameters.{k}: only for fraud_aggregate")
        return
    if p.get("reveal_scores"):
        raise JobParameterError("parameters.reveal_scores: fraud_aggregate releases counts only")
    if not isinstance(p.get("group_column"), str) or not p["group_column"]:
        raise JobParameterError("parameters.group_column: the owner's group-key column")
    groups = p.get("groups")
    if (not groups or len(groups) > MAX_GROUPS or len(set(groups)) != len(groups)
            or not all(isinstance(g, int) and not isinstance(g, bool) for g in groups)):
        raise JobParameterError(f"parameters.groups: 1..{MAX_GROUPS} distinct integers (the "
                                "public set of group keys)")
    if p.get("k_min", 1) < 1:
        raise JobParameterError("parameters.k_min: must be >= 1")


def _fraud_extra(m: Manifest, party: str) -> list[str]:
    p = m.parameters
    cols = [p["id_column"]] if "id_column" in p else []
    if m.computation == "fraud_aggregate" and party == p.get("owner"):
        cols.append(p["group_column"])
    return cols


def _fraud_check_data(m: Manifest, party: str, X: np.ndarray, extra: dict) -> None:
    p = m.parameters
    col = p.get("group_column")
    if m.computation != "fraud_aggregate" or col not in extra or party != p.get("owner"):
        return
    g = extra[col]
    bad = ~np.isin(g, np.asarray(p["groups"], dtype=np.float64))
    if bad.any():
        # the row stays in this node's log; peers and the analyst get the code only
        row = int(np.flatnonzero(bad)[0]) + 1
        log.warning("data check: column %r row %d: not one of parameters.groups", col, row)
        raise JobDataError(codes.SOURCE_GROUPS, "a group key is not in parameters.groups")


def _fraud_model(ctx: JobContext):
    """The public (coef, intercept), or the stored SharedModel named by parameters.model."""
    p = ctx.manifest.parameters
    if "model" in p:
        if ctx.models is None:
            raise JobParameterError("parameters.model: this node keeps no models")
        return ctx.models.load(p["model"], ctx.s)
    return np.asarray(p["coef"], dtype=np.float64), float(p.get("intercept", 0.0))


async def _fraud_score(ctx: JobContext) -> dict[str, Output]:
    """Flags (and scores if asked) of the owner's rows, revealed to the owner only (inside
    protocols.fraud.score: the owner is the job's only recipient)."""
    from protocols.apps import fraud

    p = ctx.manifest.parameters
    owner = ctx.names.index(p["owner"])
    ctx.log("score", rows=None if ctx.X is None else ctx.X.shape[0])
    sc = await fraud.score(
        ctx.s, _fraud_model(ctx), ctx.X, owner=owner, threshold=float(p.get("threshold", 0.5)),
        reveal_to=owner, proba=bool(p.get("proba", True)),
        reveal_scores=bool(p.get("reveal_scores", False)), sigmoid=p.get("sigmoid", "smooth"))
    out = {"flags": Output(None, 0, sc.revealed_flags)}
    if p.get("reveal_scores"):
        out["scores"] = Output(None, DEFAULT_F, sc.revealed_scores)
    return out


async def _fraud_aggregate(ctx: JobContext) -> dict[str, Output]:
    """Per public group key: flagged count and group size over shares, suppression over
    shares; delivers counts * released and released.

        z = X coef + b            fraud.score (threshold None: nothing is revealed)
        flag = [z > t]            t = logit(threshold) if proba, as fraud.score
        G = onehot(owner's keys)  input by the owner (N, K): the per-row keys stay private;
                                  fraud.check_onehot verifies under MPC that every row is a
                                  unit vector (a malicious owner's e_t + k e_d is caught)
        counts = flag G,  sizes = 1 G
        with DP: counts += DLap(2/eps), sizes += DLap(2/eps)  (each eps/2; a row changes one
                                  group's count and size by at most 1: the one-hot check)
        released = [sizes >= k] [counts >= k],  counts_out = released * counts

    Rounds: fraud.score's (2) + ltz + 1 (input G) + one-hot check (3-4) + 1 (matmul)
    (+ the noise's ltz) + ltz on 2K + 2 (products).
    Security: semi-honest; the recipients learn, per group, whether its (noisy) size and
    flagged count both reach k and, if so, its (noisy) flagged count; nobody learns a
    suppressed group's count or any row's flag.
    """
    from protocols import beaver
    from protocols.apps import fraud
    from protocols.apps.ml._base import pub
    from protocols.comparison import ltz

    s, p = ctx.s, ctx.manifest.parameters
    owner = ctx.names.index(p["owner"])
    groups = np.asarray(p["groups"], dtype=np.int64)
    k = max(int(p.get("k_min", 1)), int(ctx.k_floor))
    proba = bool(p.get("proba", True))
    thr = float(p.get("threshold", 0.5))
    ctx.log("score", rows=None if ctx.X is None else ctx.X.shape[0], groups=len(groups), k=k)
    sc = await fraud.score(s.child("score"), _fraud_model(ctx), ctx.X, owner=owner,
                           threshold=None, reveal_to=owner, proba=False)
    z = sc.score
    t = float(np.log(thr / (1 - thr))) if proba else thr
    flags = await ltz(s.child("flag"), -z + pub(t, DEFAULT_F))  # [t < z], shape (N,)
    n_rows = flags.shape[0]
    G_local = None
    if s.pid == owner:
        keys = ctx.extra[p["group_column"]].astype(np.int64)
        G_local = s.public((keys[:, None] == groups[None, :]).astype(np.int64))
    ctx.log("group", rows=n_rows, groups=len(groups))
    G = await core.input(s.child("groups"), G_local, owner)
    if G.shape != (n_rows, len(groups)):
        from protocols.errors import ShapeMismatch

        raise ShapeMismatch(f"group matrix {G.shape}, expected {(n_rows, len(groups))}")
    await fraud.check_onehot(s.child("onehot"), G)
    counts = (await beaver.matmul(s.child("count"), flags.reshape(1, n_rows), G)).reshape(-1)
    sizes = G.sum(axis=0)
    out: dict[str, Output] = {}
    if ctx.dp is not None:
        from protocols.apps import dp as dpm

        terms = ctx.dp
        nz = dpm.calibrate(terms["mechanism"], terms["epsilon"] / 2, terms["delta"] / 2, 1.0)
        ctx.log("noise", groups=len(groups), mechanism=nz.mechanism)
        both = await dpm.add_noise(s.child("noise"), concatenate_shares([counts, sizes]), nz)
        K = len(groups)
        counts, sizes = both[:K], both[K:]
        out["noise_std"] = Output(_public_share(s, [nz.std()], DEFAULT_F), DEFAULT_F)
        out["epsilon"] = Output(_public_share(s, [terms["epsilon"]], DEFAULT_F), DEFAULT_F)
    K = len(groups)
    small = await ltz(s.child("k"), concatenate_shares([sizes, counts]) - np.int64(k))
    big = -small + np.int64(1)  # [sizes >= k] ++ [counts >= k]
    released = await beaver.mul(s.child("both"), big[:K], big[K:])
    kept = await beaver.mul(s.child("keep"), released, counts)
    return {"counts": Output(kept, 0), "released": Output(released, 0), **out}


def concatenate_shares(xs: list[Share]) -> Share:
    from protocols.session import concatenate

    return concatenate(xs, 0)


#: protocols.apps.ml.train hyperparameters (train itself rejects ones its solver does not take)
_ML_PARAMS: dict[str, Any] = {
    "alpha": (int, float), "solver": str, "solver_iters": int, "f_solve": int,
    "feature_scale": list, "l2": (int, float), "batch_size": int, "epochs": int,
    "lr": (int, float), "schedule": str, "lr_decay": (int, float), "class_weight": (str, dict),
    "sigmoid": str, "shuffle_seed": int, "standardize": bool, "partition": str,
    "id_column": str, "store_model": str,
}
_FRAUD_PARAMS: dict[str, Any] = {
    "owner": str, "coef": list, "intercept": (int, float), "threshold": (int, float),
    "proba": bool, "reveal_scores": bool, "sigmoid": str, "id_column": str, "model": str,
}
_FRAUD_AGG_PARAMS: dict[str, Any] = {
    **{k: v for k, v in _FRAUD_PARAMS.items() if k != "reveal_scores"},
    "group_column": str, "groups": list, "k_min": int, "epsilon": (int, float),
}
_AGG_PARAMS: dict[str, Any] = {"epsilon": (int, float)}


def _ml_spec(name: str, model: str) -> JobSpec:
    return JobSpec(name, _ml_job(model), needs_label=True, requires=("protocols.apps.ml",),
                   params=_ML_PARAMS, validate=_validate_ml(name),
                   extra_columns=lambda m, party: ([m.parameters["id_column"]]
                                                   if "id_column" in m.parameters else []))


REGISTRY: dict[str, JobSpec] = {
    "aggregate_sum": JobSpec("aggregate_sum", _aggregate, params=_AGG_PARAMS),
    "aggregate_mean": JobSpec("aggregate_mean", _aggregate, params=_AGG_PARAMS),
    "linear_regression": _ml_spec("linear_regression", "linear"),
    "ridge_regression": _ml_spec("ridge_regression", "ridge"),
    "logistic_regression": _ml_spec("logistic_regression", "logistic"),
    "fraud_score": JobSpec("fraud_score", _fraud_score, every_party_inputs=False,
                           requires=("protocols.apps.fraud",), params=_FRAUD_PARAMS,
                           validate=_fraud_validate, extra_columns=_fraud_extra,
                           check_data=_fraud_check_data),
    "fraud_aggregate": JobSpec("fraud_aggregate", _fraud_aggregate, every_party_inputs=False,
                               requires=("protocols.apps.fraud",), params=_FRAUD_AGG_PARAMS,
                               validate=_fraud_validate, extra_columns=_fraud_extra,
                               check_data=_fraud_check_data),
}


def finish_outputs(computation: str, values: dict[str, np.ndarray],
                   parameters: dict | None = None) -> dict[str, Any]:
    """Post-processing at the recipient (plaintext, after reconstruction and decoding)."""
    out: dict[str, Any] = {k: v.tolist() for k, v in values.items()}
    if computation == "aggregate_mean" and "sum" in values and "count" in values:
        c = float(values["count"].reshape(-1)[0])
        out["mean"] = (values["sum"] / c).tolist() if c > 0 else None
    if computation == "fraud_aggregate" and "counts" in values and "released" in values:
        keys = (parameters or {}).get("groups") or list(range(len(values["counts"])))
        out["by_group"] = {
            str(g): (int(round(c)) if round(r) == 1 else None)  # None: suppressed
            for g, c, r in zip(keys, values["counts"], values["released"], strict=True)}
    return out
