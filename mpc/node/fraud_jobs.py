"""The fraud computations of the job registry (mpc.node.jobs): fraud_score and
fraud_aggregate, vertical (the owner's transactions, features split across banks, aligned by
a shared id) or, for fraud_aggregate, horizontal (every bank its own transactions with the
same features and its own group keys).

The model is public (coef, intercept: approved by hash in every node's policy) or a stored
shared model (parameters.model, mpc.node.models).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from mpc.node.config import NodeConfig
from mpc.node.jobs import (
    JobContext,
    JobParameterError,
    Output,
    _check_vertical,
    public_share,
)
from mpc.node.manifest import Manifest
from protocols import core
from protocols.arith.fixedpoint import DEFAULT_F
from protocols.session import Share

log = logging.getLogger("smpc.node.jobs")

# ----------------------------------------------------------------------------- fraud ---
MAX_GROUPS = 4096
#: hard4: at most this many elements (rows x (groups + 1)) of the owner's group matrix are
#: input, checked one-hot and counted at once in the vertical fraud_aggregate (both modes):
#: 10^5 rows x 4096 groups as one matrix was ~100 GB per party; chunked, the peak is
#: bounded by the chunk (a few hundred MB) whatever the row count. The chunk count is a
#: function of the row count and the group count, both public (the flags' shape).
GROUP_CHUNK_ELEMENTS = 1 << 20


def row_chunks(n_rows: int, width: int, limit: int = GROUP_CHUNK_ELEMENTS) -> list[tuple[int, int]]:
    """[start, stop) row ranges of at most max(1, limit // width) rows covering n_rows
    (pure; at least one range, possibly empty, so that a job over 0 rows still runs its
    steps)."""
    step = max(1, int(limit) // max(1, int(width)))
    return [(i, min(i + step, n_rows)) for i in range(0, max(n_rows, 1), step)] or [(0, 0)]
#: the largest parameters.k_min: far above any group's size; a larger k left the comparisons'
#: range (|size - k| < 2^63) and wrapped: k = 2^64 released every group in malicious mode
#: (protocols.apps.fraud_malicious.MAX_K, the same bound)
MAX_K_MIN = 1 << 40


def validate(m: Manifest, cfg: NodeConfig) -> None:
    """The fraud jobs' manifest checks (same on every node: only the manifest and the
    consortium's party names are used)."""
    p = m.parameters
    names = cfg.party_names()
    if horizontal(m):
        if m.computation != "fraud_aggregate":
            raise JobParameterError("parameters.partition: only fraud_aggregate is horizontal")
        for k in ("owner", "id_column"):
            if k in p:
                raise JobParameterError(f"parameters.{k}: not for partition = 'horizontal'")
        widths = {len(i.get("columns", [])) for i in m.inputs.values()}
        if len(widths) != 1 or 0 in widths or any("label" in i for i in m.inputs.values()):
            raise JobParameterError("inputs: a horizontal fraud_aggregate needs the same "
                                    "number of feature columns from every party, no label")
    else:
        if p.get("partition", "vertical") != "vertical":
            raise JobParameterError("parameters.partition: 'vertical' (default) or "
                                    "'horizontal'")
        _check_vertical(m, label=False)
        owner = p.get("owner")
        if owner is None:
            raise JobParameterError("parameters.owner: name the querying bank (whose "
                                    "transactions)")
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
        if horizontal(m):  # the same model over every bank's own rows
            width = len(next(iter(m.inputs.values()))["columns"])
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
    if not 1 <= p.get("k_min", 1) <= MAX_K_MIN:
        raise JobParameterError(f"parameters.k_min: must be in [1, {MAX_K_MIN}]")


def horizontal(m: Manifest) -> bool:
    return m.parameters.get("partition") == "horizontal"


def extra_columns(m: Manifest, party: str) -> list[str]:
    p = m.parameters
    cols = [p["id_column"]] if "id_column" in p else []
    if m.computation == "fraud_aggregate" and (party == p.get("owner") or horizontal(m)):
        cols.append(p["group_column"])
    return cols


def check_data(m: Manifest, party: str, X: np.ndarray, extra: dict) -> None:
    """Rows whose group key is not in parameters.groups are counted in no group (`onehot`);
    they are not an error: a failure would tell the analyst, exactly and without noise,
    whether any row has a key outside the set the analyst chose (a membership probe, issue
    13). Their number stays in this node's log."""
    p = m.parameters
    col = p.get("group_column")
    if m.computation != "fraud_aggregate" or col not in extra or (
            party != p.get("owner") and not horizontal(m)):
        return
    other = int((~np.isin(extra[col], np.asarray(p["groups"], dtype=np.float64))).sum())
    if other:
        log.warning("data check: %d row(s) of column %r have a key outside parameters.groups "
                    "(counted in no group)", other, col)


def onehot(keys: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(N, K + 1) indicator of each row's group, the last column "none of the groups": every
    row is a unit vector (so the MPC one-hot check holds for honest data), and the last
    column is dropped before anything is counted."""
    k = np.asarray(keys, dtype=np.float64)
    G = k[:, None] == np.asarray(groups, dtype=np.float64)[None, :]
    return np.concatenate([G, ~G.any(axis=1, keepdims=True)], axis=1).astype(np.int64)


def model_of(ctx: JobContext):
    """The public (coef, intercept), or the stored SharedModel named by parameters.model."""
    p = ctx.manifest.parameters
    if "model" in p:
        if ctx.models is None:
            raise JobParameterError("parameters.model: this node keeps no models")
        return ctx.models.load(p["model"], ctx.s)
    return np.asarray(p["coef"], dtype=np.float64), float(p.get("intercept", 0.0))


async def fraud_score(ctx: JobContext) -> dict[str, Output]:
    """Flags (and scores if asked) of the owner's rows, revealed to the owner only (inside
    protocols.fraud.score: the owner is the job's only recipient)."""
    from protocols.apps import fraud

    if ctx.s.security == "malicious":  # issue 16
        from mpc.node import fraud_mjobs

        if ctx.s.scheme.kind == "additive":  # SPDZ2k: refused at the manifest check already
            from mpc.node.jobs import raise_spdz2k_unsupported

            raise_spdz2k_unsupported(ctx.manifest.computation)
        return await fraud_mjobs.fraud_score(ctx)
    p = ctx.manifest.parameters
    owner = ctx.names.index(p["owner"])
    ctx.log("score", rows=None if ctx.X is None else ctx.X.shape[0])
    sc = await fraud.score(
        ctx.s, model_of(ctx), ctx.X, owner=owner, threshold=float(p.get("threshold", 0.5)),
        reveal_to=owner, proba=bool(p.get("proba", True)),
        reveal_scores=bool(p.get("reveal_scores", False)), sigmoid=p.get("sigmoid", "smooth"))
    out = {"flags": Output(None, 0, sc.revealed_flags)}
    if p.get("reveal_scores"):
        out["scores"] = Output(None, DEFAULT_F, sc.revealed_scores)
    return out


async def fraud_aggregate(ctx: JobContext) -> dict[str, Output]:
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

    Rounds: fraud.score's (2) + ltz + C x (1 (input G) + one-hot check (3-4) + 1 (matmul))
    (+ the noise's ltz) + ltz on 2K + 2 (products), with C = len(row_chunks(N, K + 1)) (1
    up to GROUP_CHUNK_ELEMENTS / (K + 1) rows): the group matrix is input, checked and
    counted chunk by chunk (hard4), so a party never holds more than a chunk of it; the
    counts and sizes are the sums over chunks, the same values as in one piece.
    Security: semi-honest; the recipients learn, per group, whether its (noisy) size and
    flagged count both reach k and, if so, its (noisy) flagged count; nobody learns a
    suppressed group's count or any row's flag.
    """
    from protocols.apps import fraud
    from protocols.apps.ml._base import pub
    from protocols.comparison import ltz

    s, p = ctx.s, ctx.manifest.parameters
    if s.security == "malicious":  # issue 16
        from mpc.node import fraud_mjobs

        if ctx.s.scheme.kind == "additive":  # SPDZ2k: refused at the manifest check already
            from mpc.node.jobs import raise_spdz2k_unsupported

            raise_spdz2k_unsupported(ctx.manifest.computation)
        return await fraud_mjobs.fraud_aggregate(ctx)
    from mpc.node.fraud_mjobs import _noise

    _noise(ctx, len(p["groups"]))  # the DP noise's caps, checked before any input
    if horizontal(ctx.manifest):
        return await _aggregate_horizontal(ctx)
    owner = ctx.names.index(p["owner"])
    groups = np.asarray(p["groups"], dtype=np.int64)
    k = max(int(p.get("k_min", 1)), int(ctx.k_floor))
    proba = bool(p.get("proba", True))
    thr = float(p.get("threshold", 0.5))
    ctx.log("score", rows=None if ctx.X is None else ctx.X.shape[0], groups=len(groups), k=k)
    sc = await fraud.score(s.child("score"), model_of(ctx), ctx.X, owner=owner,
                           threshold=None, reveal_to=owner, proba=False)
    z = sc.score
    t = float(np.log(thr / (1 - thr))) if proba else thr
    flags = await ltz(s.child("flag"), -z + pub(t, DEFAULT_F))  # [t < z], shape (N,)
    n_rows = flags.shape[0]
    keys = ctx.extra[p["group_column"]] if s.pid == owner else None
    chunks = row_chunks(n_rows, len(groups) + 1, ctx.group_chunk)
    ctx.log("group", rows=n_rows, groups=len(groups), chunks=len(chunks))
    counts, sizes = None, None
    for c, (i0, i1) in enumerate(chunks):  # hard4: rows x groups never held at once
        G_local = None if keys is None else s.public(onehot(keys[i0:i1], groups))
        G = await core.input(s.child(f"groups{c}" if c else "groups"), G_local, owner)
        if G.shape != (i1 - i0, len(groups) + 1):
            from protocols.errors import ShapeMismatch

            raise ShapeMismatch(f"group matrix {G.shape}, expected {(i1 - i0, len(groups) + 1)}")
        part = await _group_totals(s.child(f"c{c}") if c else s, flags[i0:i1], G, len(groups))
        counts = part[0] if counts is None else counts + part[0]
        sizes = part[1] if sizes is None else sizes + part[1]
    assert counts is not None and sizes is not None
    return await _suppress_release(ctx, counts, sizes, groups, k)


async def _release_groups(ctx: JobContext, flags: Share, G: Share, groups: np.ndarray,
                          k: int) -> dict[str, Output]:
    """The one-hot check, per-group counts and sizes, DP noise, suppression (see
    fraud_aggregate)."""
    counts, sizes = await _group_totals(ctx.s, flags, G, len(groups))
    return await _suppress_release(ctx, counts, sizes, groups, k)


async def _group_totals(s, flags: Share, G: Share, K: int) -> tuple[Share, Share]:
    """The one-hot check of G (rows x (K + 1)), then (flagged counts, sizes) per group over
    its rows: 4-5 rounds (the check's 3-4, one matrix product)."""
    from protocols import beaver
    from protocols.apps import fraud

    n_rows = flags.shape[0]
    await fraud.check_onehot(s.child("onehot"), G)  # over K + 1 columns (`onehot`)
    G = Share(np.ascontiguousarray(G.data[:, :K]), s)  # "no group" is dropped
    counts = (await beaver.matmul(s.child("count"), flags.reshape(1, n_rows), G)).reshape(-1)
    return counts, G.sum(axis=0)


async def _suppress_release(ctx: JobContext, counts: Share, sizes: Share, groups: np.ndarray,
                            k: int) -> dict[str, Output]:
    """DP noise (when agreed) and the k-suppression of the per-group totals."""
    from protocols import beaver
    from protocols.comparison import ltz

    s = ctx.s
    out: dict[str, Output] = {}
    if ctx.dp is not None:
        from protocols.apps import dp as dpm

        terms = ctx.dp
        nz = dpm.calibrate(terms["mechanism"], terms["epsilon"] / 2, terms["delta"] / 2, 1.0)
        ctx.log("noise", groups=len(groups), mechanism=nz.mechanism)
        both = await dpm.add_noise(s.child("noise"), concatenate_shares([counts, sizes]), nz)
        K = len(groups)
        counts, sizes = both[:K], both[K:]
        out["noise_std"] = Output(public_share(s, [nz.std()], DEFAULT_F), DEFAULT_F)
        out["epsilon"] = Output(public_share(s, [terms["epsilon"]], DEFAULT_F), DEFAULT_F)
    K = len(groups)
    small = await ltz(s.child("k"), concatenate_shares([sizes, counts]) - np.int64(k))
    big = -small + np.int64(1)  # [sizes >= k] ++ [counts >= k]
    released = await beaver.mul(s.child("both"), big[:K], big[K:])
    kept = await beaver.mul(s.child("keep"), released, counts)
    return {"counts": Output(kept, 0), "released": Output(released, 0), **out}


async def _aggregate_horizontal(ctx: JobContext) -> dict[str, Output]:
    """Horizontal fraud_aggregate: every bank its own transactions (same feature columns)
    and its own group keys; the counts are over the union of all banks' rows.

        X = rows of every bank (input by each), G = every bank's one-hot keys (input by each)
        z = X coef + b      public coef: a local product of shares by public values, then one
                            truncation; stored model: one matrix-triple product + truncation
        flags = [z > t], then as the vertical job (one-hot check over every bank's G: one
                            cheating bank is caught; noise; suppression on size and count)

    Rounds: 1 (inputs) + trunc + ltz + the vertical job's release rounds.
    Security: semi-honest; the peers learn each bank's row count (input shapes).
    """
    import asyncio

    from protocols import beaver
    from protocols.apps.ml._base import SharedModel, encode, pub
    from protocols.comparison import ltz
    from protocols.session import concatenate
    from protocols.truncation import trunc

    s, p = ctx.s, ctx.manifest.parameters
    groups = np.asarray(p["groups"], dtype=np.int64)
    k = max(int(p.get("k_min", 1)), int(ctx.k_floor))
    proba = bool(p.get("proba", True))
    thr = float(p.get("threshold", 0.5))
    d = ctx.X.shape[1]
    G_mine = s.public(onehot(ctx.extra[p["group_column"]], groups))
    ctx.log("input", rows=ctx.X.shape[0], groups=len(groups))

    async def one(o: int) -> tuple[Share, Share]:
        x = await core.input(s.child(f"x{o}"), encode(s, ctx.X, DEFAULT_F) if o == s.pid
                             else None, o)
        g = await core.input(s.child(f"g{o}"), G_mine if o == s.pid else None, o)
        if x.ndim != 2 or x.shape[1] != d or g.shape != (x.shape[0], len(groups) + 1):
            from protocols.errors import ShapeMismatch

            raise ShapeMismatch("a bank's rows or group matrix do not fit the job")
        return x, g

    parts = await asyncio.gather(*(one(o) for o in range(s.n)))  # inputs: no preprocessing
    X = concatenate([x for x, _ in parts], 0)
    G = concatenate([g for _, g in parts], 0)
    model = model_of(ctx)
    ctx.log("score", rows=X.shape[0])
    if isinstance(model, SharedModel):
        if model.n_features != d:
            raise JobParameterError("the stored model has another number of features")
        zr = await beaver.matmul(s.child("z"), X, model.coef.reshape(d, 1))
        z = await trunc(s.child("trunc"), zr.reshape(-1), model.f)
        z = z + Share(np.broadcast_to(model.intercept.data, z.shape).copy(), s)
    else:
        coef, icpt = model
        c_int = np.round(np.asarray(coef, dtype=np.float64) * 2**DEFAULT_F).astype(np.int64)
        z = await trunc(s.child("trunc"), X @ c_int.reshape(d, 1), DEFAULT_F)
        z = z.reshape(-1) + pub(icpt, DEFAULT_F)
    t = float(np.log(thr / (1 - thr))) if proba else thr
    flags = await ltz(s.child("flag"), -z + pub(t, DEFAULT_F))
    return await _release_groups(ctx, flags, G, groups, k)


def concatenate_shares(xs: list[Share]) -> Share:
    from protocols.session import concatenate

    return concatenate(xs, 0)


FRAUD_PARAMS: dict[str, Any] = {
    "owner": str, "coef": list, "intercept": (int, float), "threshold": (int, float),
    "proba": bool, "reveal_scores": bool, "sigmoid": str, "id_column": str, "model": str,
}
FRAUD_AGG_PARAMS: dict[str, Any] = {
    **{k: v for k, v in FRAUD_PARAMS.items() if k != "reveal_scores"},
    "group_column": str, "groups": list, "k_min": int, "epsilon": (int, float),
    "partition": str,
}
