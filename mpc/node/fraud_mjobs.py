"""fraud_score and fraud_aggregate (vertical or horizontal, public model, DP noise when
agreed) with consortium.security = "malicious" (issue 16): protocols.apps.fraud_malicious,
whose banks' inputs are range-checked and whose group matrix is checked one-hot under MPC
with checked products; outputs are MShares, verified before delivery (mpc.node.checked).
The vertical jobs also score with a model stored by a malicious training job
(parameters.model; `load_model`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mpc.node.jobs import JobContext, JobParameterError, Output, stated_const
from protocols.arith.fixedpoint import DEFAULT_F
from protocols.errors import MaliciousUnsupportedError
from protocols.malicious.chida18 import MShare


def _public_model(ctx: JobContext) -> tuple[np.ndarray, float]:
    p = ctx.manifest.parameters
    if "model" in p:
        raise MaliciousUnsupportedError("parameters.model: a stored model is scored only in the "
                                        "vertical jobs with security = 'malicious' (the horizontal "
                                        "aggregate scores locally with a public model)")
    return np.asarray(p["coef"], dtype=np.float64), float(p.get("intercept", 0.0))


def model_digest(name: str, info: dict, model: str, f: int, n_features: int) -> np.ndarray:
    """The public description of a stored model as four int64 (BLAKE2b-256): name, training
    job, kind, fixed-point bits, feature count, shape, security. Equal at every node that
    holds a share of the same stored model."""
    import hashlib
    import json

    body = json.dumps({"name": name, "job_id": info.get("job_id"), "model": model, "f": int(f),
                       "n_features": int(n_features), "shape": list(info.get("coef_shape", [])),
                       "security": info.get("security")}, sort_keys=True).encode()
    return np.frombuffer(hashlib.blake2b(body, digest_size=32, person=b"smpc-model-rec").digest(),
                         dtype=np.int64).copy()


async def load_model(ctx: JobContext) -> Any:
    """The stored model named by parameters.model, as an MSharedModel under this job's MAC
    key (issue 16), or the public (coef, intercept).

        local:   this node's share [w] (ModelStore.load: stored by a malicious job, bound to
                 this node and consortium; ModelSecurityError (model.security) at every
                 node for a semi-honest model, before any round)
        agree:   the model's public description (`model_digest`) by batch.agree_ints (2
                 rounds, echo-checked): every honest node holds the same table, so a node
                 whose share belongs to another model, job or shape fails the job at every
                 honest node alike (ModelStoreError; a node that equivocates: cheating
                 detected)
        MAC:     [r w] = chida18.authenticate([w]) for coef and intercept in one reduction
                 (2 rounds): the loaded model enters the job like a checked input

    Why it is sound [Chida et al., CRYPTO 2018, sec. 3]: with n = 2t + 1 the t + 1 honest
    nodes' shares fix w, whatever t cheaters hold; a cheater's altered share (share +
    delta: it cannot re-sign an honest node's file, but its own file is its own) is an
    additive error on the authentication's reduction ([r w] + lambda_c r_c delta), caught
    with the job's batched check with probability >= 1 - 2/|F| (4/|F| when the offline
    compression folds it first), and any later use of its share is an additive attack on a
    product or an inconsistent opening, caught likewise. The MAC shares of the training
    job are not reused: its key r was opened by its own verification."""
    p = ctx.manifest.parameters
    if "model" not in p:
        return _public_model(ctx)
    if ctx.models is None:
        raise JobParameterError("parameters.model: this node keeps no models")
    from protocols.apps.ml.malicious import MSharedModel
    from protocols.malicious import authenticate
    from protocols.malicious.batch import agree_ints
    from protocols.session import Share

    s = ctx.s
    sm = ctx.models.load(p["model"], s)  # refuses a semi-honest model (model.security)
    table = await agree_ints(s.child("model"), model_digest(p["model"], sm.info, sm.model, sm.f,
                                                            sm.n_features))
    if any(not np.array_equal(table[j], table[s.pid]) for j in range(s.n)):
        from mpc.node.models import ModelStoreError

        raise ModelStoreError(f"the nodes hold different stored models named {p['model']!r} "
                              "(another training job, kind or shape)")
    d = sm.coef.shape[0]
    packed = Share(np.concatenate([sm.coef.data.reshape(-1), sm.intercept.data.reshape(1)]), s)
    w = await authenticate(s, packed)
    ctx.log("model", name=p["model"], features=d, security="malicious")
    return MSharedModel(sm.model, w[:d], w[d:].reshape(()), sm.n_features, sm.f,
                        info={**sm.info, "authenticated": True})


async def fraud_score(ctx: JobContext) -> dict[str, Output]:
    from protocols.apps import fraud_malicious as fm

    p = ctx.manifest.parameters
    owner = ctx.names.index(p["owner"])
    ctx.log("score", rows=None if ctx.X is None else ctx.X.shape[0], security="malicious")
    sc = await fm.score(
        ctx.s, await load_model(ctx), ctx.X, owner=owner, threshold=float(p.get("threshold", 0.5)),
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
    _noise(ctx, len(p["groups"]))  # refused here, before any input, if it cannot be drawn
    # k and the DP terms: the same public constants at every party (the runner's agree_terms)
    if horizontal(ctx.manifest):
        return await fraud_aggregate_horizontal(ctx)
    owner = ctx.names.index(p["owner"])
    groups = np.asarray(p["groups"], dtype=np.int64)
    k = max(int(p.get("k_min", 1)), int(ctx.k_floor))
    ctx.log("score", rows=None if ctx.X is None else ctx.X.shape[0], groups=len(groups),
            security="malicious")
    sc = await fm.score(s, await load_model(ctx), ctx.X, owner=owner,
                        threshold=float(p.get("threshold", 0.5)), reveal_to=owner,
                        proba=bool(p.get("proba", True)), reveal_scores=False, _reveal=False)
    if sc.flags is None:  # pragma: no cover (a threshold is always given)
        raise JobParameterError("fraud_aggregate needs a threshold")
    from mpc.node.fraud_jobs import row_chunks

    # compared as floats, as the semi-honest job's `onehot` and check_data (review5: an int64
    # cast counted a key 3.5 in group 3, where the semi-honest job counts it in no group)
    keys = np.asarray(ctx.extra[p["group_column"]], dtype=np.float64) if s.pid == owner else None
    N = sc.flags.shape[0]
    chunks = row_chunks(N, len(groups) + 1, ctx.group_chunk)  # hard4; + the "no group" column
    ctx.log("group", rows=N, groups=len(groups), chunks=len(chunks))
    counts, sizes = await fm.group_totals_chunked(s, sc.flags, keys, groups, owner, chunks)
    return await _release(ctx, counts, sizes, k)


def _noise(ctx: JobContext, K: int) -> Any:
    """The DP noise of the K flagged counts and K sizes (None without DP terms), as the
    semi-honest job: each at epsilon / 2, sensitivity 1. JobParameterError if the 2K samples
    cannot be drawn (dp.check_noise: a Gaussian table or Laplace digits beyond the caps, or
    more than MAX_NOISE_COMPARISONS comparisons in all); `fraud_aggregate` calls it before
    any input, so a refusal costs no round."""
    if ctx.dp is None:
        return None
    from protocols.apps import dp as dpm

    terms = ctx.dp
    nz = dpm.calibrate(terms["mechanism"], terms["epsilon"] / 2, terms["delta"] / 2, 1.0)
    try:
        dpm.check_noise(nz, samples=2 * K)
    except dpm.NoiseRangeError as e:
        raise JobParameterError(str(e)) from None
    return nz


async def _release(ctx: JobContext, counts: MShare, sizes: MShare, k: int) -> dict[str, Output]:
    """DP noise (when agreed) on the flagged counts and sizes, as the semi-honest job
    (fraud_jobs._release_groups: each at epsilon / 2, sensitivity 1: a row changes one
    group's count and size by at most 1), from protocols.apps.dp_malicious; then the
    k-suppression over MShares (fraud_malicious.suppress)."""
    from protocols.apps import fraud_malicious as fm

    s, out = ctx.s, {}
    if ctx.dp is not None:
        from protocols.apps import dp_malicious as dpmal
        from protocols.malicious.batch import concat

        terms, K = ctx.dp, counts.shape[0]
        nz = _noise(ctx, K)
        ctx.log("noise", groups=K, mechanism=nz.mechanism, security="malicious")
        both = await dpmal.add_noise(s, concat([counts, sizes]), nz)
        counts, sizes = both[:K], both[K:]
        pub = await stated_const(s, [nz.std(), terms["epsilon"]])
        out["noise_std"] = Output(pub[:1], DEFAULT_F)  # type: ignore[arg-type]
        out["epsilon"] = Output(pub[1:], DEFAULT_F)  # type: ignore[arg-type]
    kept, released = await fm.suppress(s, counts, sizes, k)
    return {"counts": Output(kept, 0), "released": Output(released, 0), **out}  # type: ignore[arg-type]


#: width of a bank's per-group counts in the horizontal aggregate (unsigned: up to 2^40 - 1
#: rows per bank and group); the n-bank totals stay far inside malicious.ltz's range
COUNT_BITS = 40


def local_flags(X: np.ndarray, coef: np.ndarray, intercept: float, threshold: float,
                proba: bool) -> np.ndarray:
    """A bank's own rows scored with the public model in the jobs' fixed point (f =
    DEFAULT_F; the product's low bits floored): flag = [z > t], t = logit(threshold) if
    proba. Pure; the bank could compute this itself from its own data and the public model,
    so it learns nothing it did not have."""
    f = DEFAULT_F
    Xe = np.round(np.asarray(X, dtype=np.float64) * 2**f).astype(np.int64)
    ce = np.round(np.asarray(coef, dtype=np.float64) * 2**f).astype(np.int64)
    if Xe.size == 0:
        return np.zeros(Xe.shape[0], dtype=bool)
    if int(np.abs(Xe).max()) * int(np.abs(ce).sum()) < 2**62:  # exact in int64
        z = (Xe @ ce) >> f
    else:  # exact in Python integers (the floor of the exact product)
        z = np.array([int(v) >> f for v in Xe.astype(object) @ ce.astype(object)], dtype=object)
    z = z + int(round(intercept * 2**f))
    t = float(np.log(threshold / (1 - threshold))) if proba else threshold
    return np.asarray(z > int(np.floor(t * 2**f)), dtype=bool)


async def fraud_aggregate_horizontal(ctx: JobContext) -> dict[str, Output]:
    """Horizontal fraud_aggregate with security = "malicious" (issue 16; Shamir, t < n/2):
    every bank its own transactions and group keys, a public model.

        bank b (locally): flags_b = local_flags(X_b), G_b = one-hot keys (rows outside
                          parameters.groups in no group)
                          F_b = flags_b G_b, U_b = (1 - flags_b) G_b      (K each, >= 0)
        input:            (F_b, U_b) range-checked, unsigned COUNT_BITS bits (input_many)
        counts = sum_b F_b, sizes = sum_b (F_b + U_b)
        kept, released = fraud_malicious.suppress(counts, sizes, k)

    Scoring is local: with a public model a bank's flags are a function of its own data, so
    under MPC they would add nothing a cheater could not choose anyway (it may input any
    data). What a cheater cannot do: report more flagged than rows in a group (F and U are
    both checked non-negative, so sizes >= counts), wrap a total (range), or change another
    bank's counts or the suppression (MACed shares, checked products; caught with
    security.cheating_detected on every honest node before anything is released).
    Reveals what the semi-honest job reveals, less the banks' row counts (only K-vectors
    are input). Rounds: 7 (inputs) + ltz 9 (+ its masks, malicious.compare) + 2 products
    + the verification (+ the noise's, with DP; the runner's agree_terms echo, 1 round,
    comes before)."""
    from mpc.node.fraud_jobs import onehot
    from protocols.malicious.chida18 import input_many

    s, p = ctx.s, ctx.manifest.parameters
    coef, icpt = _public_model(ctx)
    groups = np.asarray(p["groups"], dtype=np.int64)
    K = len(groups)
    k = max(int(p.get("k_min", 1)), int(ctx.k_floor))
    if ctx.X.ndim != 2 or ctx.X.shape[1] != coef.shape[0]:
        raise JobParameterError(f"parameters.coef has {coef.shape[0]} entries, this bank's rows "
                                f"{ctx.X.shape[1] if ctx.X.ndim == 2 else '?'} columns")
    flags = local_flags(ctx.X, coef, icpt, float(p.get("threshold", 0.5)),
                        bool(p.get("proba", True)))
    G = onehot(ctx.extra[p["group_column"]], groups)[:, :K]
    mine = np.stack([flags.astype(np.int64) @ G, (~flags).astype(np.int64) @ G])  # (2, K)
    ctx.log("input", groups=K, security="malicious")
    got = await input_many(s, s.domain.from_int(mine), {o: (2, K) for o in range(s.n)},
                           bits=COUNT_BITS, signed=False)
    total = got[0]
    for o in range(1, s.n):
        total = total + got[o]
    counts = total[0]
    sizes = counts + total[1]
    ctx.log("group", groups=K, k=k)
    return await _release(ctx, counts, sizes, k)
