"""The registry of named computations a node may run.

Each entry says which data it needs from each party (columns, and a label column for the
models), validates its parameters, and runs on a Session, returning named outputs as Shares
with their fixed-point scale. It never reveals anything itself: the node delivers each
output to the manifest's recipients only (`core.reveal_to` to a party, or every party's
share sealed to the analyst's key), so a node never sees an output not addressed to it.

    aggregate_sum     per-column totals over all parties' rows, and the row count
    aggregate_mean    the same two outputs; the recipient divides (it learns sum and count);
                      with security = "malicious" both inputs are range-checked MACed shares
                      (Shamir: MShares; additive: SPDZ2k AShares; see check_spdz2k for
                      what a SPDZ2k consortium refuses)
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

A model job with parameters.store_model keeps its model as shares at every node
(mpc.node.models); fraud jobs name it with parameters.model instead of public
coefficients. With security = "malicious" the shares are stored only after the job's
verification passed, and loaded into a malicious job with fresh MACs
(mpc.node.fraud_mjobs.load_model).

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
    #: rows x groups elements of a group matrix handled at once (fraud_aggregate; tests
    #: force a small one to span several chunks)
    group_chunk: int = 1 << 20


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


def public_share(s: Session, v: np.ndarray, f: int) -> Share:
    """A sharing of a public value (every party knows it): the release states it."""
    enc = FixedPoint(s.domain, f).encode(np.atleast_1d(np.asarray(v, dtype=np.float64)))
    return Share(s.domain.zeros(enc.shape), s) + enc


@dataclass(frozen=True)
class AggregateNoise:
    """The DP aggregate's noise plan (`_aggregate_noises`): per output (d column totals in
    encoded units, then the row count) its Noise, in units of 2^exps[j] encoded units (the
    output is first rounded to that lattice, `coarsen`), and its std in released units."""

    noises: list[Any]
    exps: np.ndarray
    std: np.ndarray


def _aggregate_noises(terms: dict[str, Any], bnd: list[np.ndarray]) -> AggregateNoise:
    """The DP aggregate's noise plan. bnd: every party's (d, 2) column bounds; a total's
    sensitivity is the largest |bound| of its column over all parties (one row replaced), the
    count's 1; epsilon and delta split evenly over d + 1. A Gaussian total is released on the
    lattice 2^e (dp.coarse_exponent: its sensitivity at most dp.COARSE_UNITS + 1 lattice
    steps), which its sampler can draw; the Laplace's exponents are 0. JobParameterError
    (before any input) if the noise still cannot be drawn (dp.check_noise)."""
    from protocols.apps import dp as dpm

    b = np.abs(np.stack(bnd))  # (n, d, 2)
    d = b.shape[1]
    sens = [*np.maximum(np.ceil(b.max(axis=(0, 2)) * 2**DEFAULT_F), 1), 1.0]  # encoded units
    k = d + 1
    exps = np.array([dpm.coarse_exponent(terms["mechanism"], float(x)) for x in sens], dtype=np.int64)
    noises = [dpm.calibrate(terms["mechanism"], terms["epsilon"] / k, terms["delta"] / k,
                            dpm.coarse_sensitivity(float(x), int(e)))
              for x, e in zip(sens, exps, strict=True)]
    try:
        dpm.check_noise(noises)
    except dpm.NoiseRangeError as e:  # before any input: a clear refusal, not a node OOM
        raise JobParameterError(str(e)) from None
    std = np.array([nz.std() * 2.0 ** int(e) / 2**DEFAULT_F for nz, e in zip(noises[:d], exps[:d], strict=True)]
                   + [noises[d].std()])
    return AggregateNoise(noises, exps, std)


async def coarsen(s: Session, x: Any, exps: np.ndarray, trunc: Callable[..., Awaitable[Any]]) -> Any:
    """Entry j of x (a flat Share or MShare of integers) rounded to the lattice 2^exps[j], in
    units of 2^exps[j]: `trunc(s, x[idx], e)` (stochastic rounding, dp.coarse_sensitivity)
    for each distinct e > 0 in ascending order (one truncation each: the parties request
    preprocessing in the same order), the other entries unchanged. Rounds: one truncation's
    per distinct e > 0 (none for the Laplace)."""
    for e in sorted({int(v) for v in exps} - {0}):
        idx = np.flatnonzero(exps == e)
        t = await trunc(s.child(f"coarse{e}"), x[idx], e)
        keep = np.flatnonzero(exps != e)
        order = np.argsort(np.concatenate([keep, idx]), kind="stable")
        if isinstance(x, Share):
            from protocols.session import concatenate

            x = concatenate([x[keep], t], 0)[order]
        else:  # the truncation may have verified: the kept entries under the new key first
            from protocols.malicious.batch import concat
            from protocols.malicious.chida18 import refresh

            x = concat([await refresh(s.child(f"coarse{e}r"), x[keep]), t])[order]
    return x


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
    from protocols.truncation import trunc

    s, terms = ctx.s, ctx.dp
    fp = FixedPoint(s.domain, DEFAULT_F)
    d = ctx.X.shape[1]
    bounds = terms.get("bounds", {})
    if set(bounds) != set(range(s.n)):
        raise JobDataError(codes.POLICY_BOUNDS, "a party states no bounds for its columns")
    bnd = [np.asarray(bounds[o], dtype=np.float64).reshape(d, 2) for o in range(s.n)]
    plan = _aggregate_noises(terms, bnd)  # refused here if it cannot be drawn
    ctx.log("input", shape=list(ctx.X.shape))

    async def one(o: int) -> Share:
        return await core.input(s.child(f"rows{o}"), fp.encode(ctx.X) if o == s.pid else None, o)

    parts = await asyncio.gather(*(one(o) for o in range(s.n)))
    if any(p.ndim != 2 or p.shape[1] != d for p in parts):
        from protocols.errors import ShapeMismatch

        raise ShapeMismatch("a party's rows do not have the job's column count")
    from protocols.session import concatenate

    X = concatenate(list(parts), 0)
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
    k = d + 1
    ctx.log("noise", outputs=k, mechanism=terms["mechanism"])
    vals = concatenate([total, public_share(s, [rows], 0)], 0)
    vals = await coarsen(s, vals, plan.exps, trunc)
    noisy = await dpm.add_noise(s.child("noise"), vals, plan.noises)  # one batch, no gather
    noisy = noisy * (np.int64(1) << plan.exps)  # back in encoded units
    return {"sum": Output(noisy[:d], DEFAULT_F),
            "count": Output(noisy[d:], 0),
            "noise_std": Output(public_share(s, plan.std, DEFAULT_F), DEFAULT_F),
            "epsilon": Output(public_share(s, [terms["epsilon"]], DEFAULT_F), DEFAULT_F)}


async def stated_const(s: Session, values: list[float] | np.ndarray) -> Any:
    """Public reals (a release's noise_std and epsilon) as an MShare with DEFAULT_F bits,
    encoded exactly in Python integers: an int64 encoding wrapped for a stated std above
    2^47 (a count's Laplace noise at epsilon ~1e-15 stated a negative std)."""
    from protocols.malicious.batch import const

    v = np.asarray(values, dtype=np.float64).reshape(-1)
    enc = np.array([int(round(float(x) * 2**DEFAULT_F)) for x in v], dtype=object)
    return await const(s, 0, v.shape) + s.domain.from_int(enc)


#: bytes of the terms digest every node echoes before a job's first input (`agree_terms`)
TERMS_DIGEST_BYTES = 32


def terms_digest(ctx: JobContext) -> bytes:
    """BLAKE2b-256 of the public terms this node derived for the job from the agreement
    views (pure): the manifest hash, the computation, the security mode, k_floor (the largest
    policy.min_group_size) and the agreed DP terms."""
    import hashlib
    import json

    blob = json.dumps({"manifest": ctx.manifest.hash, "computation": ctx.manifest.computation,
                       "security": ctx.s.security, "k_floor": int(ctx.k_floor), "dp": ctx.dp},
                      sort_keys=True, default=str).encode()
    return hashlib.blake2b(blob, digest_size=TERMS_DIGEST_BYTES, person=b"smpc-job-terms").digest()


class TermsMismatchError(SmpcError):
    """The nodes derived different public terms for one job (semi-honest sessions; a
    malicious session raises CheatingDetectedError, check "agreement")."""

    code = codes.AGREEMENT_TERMS_MISMATCH


async def agree_terms(ctx: JobContext) -> None:
    """Every job, both security modes (`run_job` calls it before the computation, so before
    any input is shared): check that every node holds the same public terms the runner
    derived from the peers' agreement views (ctx.k_floor, ctx.dp, with the manifest hash,
    computation and security mode), or end the job on every honest node with a typed error
    and nothing released. The views are sent to each peer separately and not echoed, so a
    cheating bank could send different ones (e.g. min_group_size 10 to one node, 19 to the
    other): the honest nodes then subtract different public constants from one sharing, and
    the cheater, by placing its own share on the line through theirs (n = 3, t = 1), makes the
    opening consistent with a constant of its choice (2 k_A - k_B = 1: the k-suppression
    bypassed; DP thresholds likewise; in a semi-honest session nothing would even check).

        every node sends every other D = terms_digest(ctx) (1 round);  any D_j != D: fail

    If the terms of two honest nodes differ, each of them receives the other's digest, so
    every honest node fails (an echo of the table, as review3's 2-round agree_ints, adds
    nothing here: a node that lies about its own digest to one peer only makes that peer
    abort, as a node may always drop out).
    Rounds: 1.   Bytes: (n - 1)*32 per node.
    Raises: CheatingDetectedError (check "agreement", terminal: the MAC key and buffered
    preprocessing burnt) with security = "malicious"; TermsMismatchError (code
    agreement.terms_mismatch) otherwise; the session is aborted either way."""
    s = ctx.s
    mine = np.frombuffer(terms_digest(ctx), dtype=np.uint8)
    tag = s.tag("terms")
    s.check_alive()
    try:
        for j in s.peers:
            await s.channel.send(j, tag, mine)
        got = {j: await s.channel.recv_array(j, tag, dtype=np.uint8, shape=mine.shape)
               for j in s.peers}
    except SmpcError as e:
        await s.abort(e)
        raise
    s.stats.rounds += 1
    bad = [j for j in s.peers if not np.array_equal(got[j], mine)]
    if not bad:
        return
    msg = (f"party {s.pid}: party(ies) {bad} derived different public terms (k, DP) for the "
           "job from the agreement: a peer sent different views to different nodes")
    if s.security == "malicious":
        if s.scheme.kind == "additive":  # SPDZ2k: its own terminal failure (alpha_i burnt)
            from protocols.malicious.spdz2k import _fail as _fail2k

            await _fail2k(s, "agreement", msg)
        from protocols.malicious.chida18 import _fail

        await _fail(s, "agreement", msg)
    err = TermsMismatchError(msg)
    await s.abort(err)
    raise err


async def run_job(spec: JobSpec, ctx: JobContext) -> dict[str, Output]:
    """The runner's compute step: the terms echo (`agree_terms`, 1 round), then the
    registered computation."""
    await agree_terms(ctx)
    return await spec.run(ctx)


async def _aggregate_malicious(ctx: JobContext) -> dict[str, Output]:
    """`_aggregate` with consortium.security = "malicious" (issue 16): every party inputs its
    column sums and row count as range-checked MACed shares through the backend seam
    (protocols.malicious.backend.input_many): MShares of protocols.malicious.chida18 [Chida
    et al., CRYPTO 2018] with Shamir (t < n/2), AShares of SPDZ2k [Cramer et al., CRYPTO
    2018; spdz2k_ml.input_many, range by masked bits] with additive sharing (any n >= 2, up
    to n - 1 corrupt); the totals are local sums, and the runner verifies (Shamir) or
    MAC-checks (SPDZ2k) every input before any share leaves (mpc.node.checked). With DP
    terms agreed, every bank first clips its own rows to its own policy bounds (as
    `_aggregate_dp` does under MPC: a cheater's clipping of its own rows changes nothing of
    an honest row's sensitivity) and the totals get joint noise from
    protocols.apps.dp_malicious, the same distribution and calibration (`_aggregate_noises`).

        sums:  signed, w = value_bits - ceil(log2 n) bits each (64 - 2 = 62 for n = 3 on
               GF(2^127 - 1); 64 - 2 on Z_2^64 for n = 3, 63 for n = 2): the n-term
               total stays within the signed value range the
               recipient decodes, so no input can wrap another bank's total
        count: unsigned, w - 1 bits: a negative count (not any bank's possible input) is
               refused under MPC like an out-of-range value
    A cheating bank can still input any value within its range (input substitution, as in
    every ideal functionality); it cannot change another bank's contribution or the sum
    (the shares are MACed), and a share sent wrong is caught (security.cheating_detected)
    on every honest node before anything is released. Rounds: 2 x 7 (the two inputs;
    SPDZ2k: 2 x 1 plus its sources' masked bits) + the runner's verification (+ the
    noise's, with DP, Shamir only; the runner's `agree_terms` echo, 1 round, comes before)."""
    from protocols.malicious import backend as mal
    from protocols.truncation import value_bits

    s = ctx.s
    fp = FixedPoint(s.domain, DEFAULT_F)
    d = ctx.X.shape[1]
    X = ctx.X
    bnd: list[np.ndarray] = []
    if ctx.dp is not None and mal.is_spdz2k(s):  # refused at the manifest check already
        raise_spdz2k_unsupported(ctx.manifest.computation, "DP noise (policy.dp)")
    if ctx.dp is not None:  # every bank clips its own rows to its own bounds, as _aggregate_dp
        bounds = ctx.dp.get("bounds", {})
        if set(bounds) != set(range(s.n)):
            raise JobDataError(codes.POLICY_BOUNDS, "a party states no bounds for its columns")
        bnd = [np.asarray(bounds[o], dtype=np.float64).reshape(d, 2) for o in range(s.n)]
        plan = _aggregate_noises(ctx.dp, bnd)  # refused here if it cannot be drawn
        X = np.clip(X, bnd[s.pid][:, 0], bnd[s.pid][:, 1])
    w = value_bits(s.domain) - (s.n - 1).bit_length()
    # with DP, as `_aggregate_dp`: every clipped row encoded, then summed exactly (the
    # sensitivity bounds a row's encoding; a floating-point sum's rounding is not bounded)
    sums = fp.encode(X.sum(axis=0)) if ctx.dp is None else s.domain.sum(fp.encode(X), axis=0)
    count = s.domain.from_int(np.array([X.shape[0]], dtype=np.int64))
    ctx.log("input", shape=[d + 1], security="malicious")
    # one after the other: both draw from the session's preprocessing stream, whose order
    # must be the same at every party
    sum_sh = await mal.input_many(s.child("sum"), sums, {o: (d,) for o in range(s.n)}, bits=w)
    cnt_sh = await mal.input_many(s.child("count"), count, {o: (1,) for o in range(s.n)},
                                  bits=w - 1, signed=False)
    total, cnt = sum_sh[0], cnt_sh[0]
    for o in range(1, s.n):
        total, cnt = total + sum_sh[o], cnt + cnt_sh[o]
    if ctx.dp is None:
        return {"sum": Output(total, DEFAULT_F), "count": Output(cnt, 0)}  # type: ignore[arg-type]
    from protocols.apps import dp_malicious as dpm
    from protocols.malicious.batch import concat
    from protocols.malicious.fixed import trunc

    ctx.log("noise", outputs=d + 1, mechanism=ctx.dp["mechanism"], security="malicious")
    vals = await coarsen(s, concat([total, cnt]), plan.exps, trunc)
    noisy = await dpm.add_noise(s, vals, plan.noises) * (np.int64(1) << plan.exps)
    pub = await stated_const(s, np.append(plan.std, ctx.dp["epsilon"]))
    return {"sum": Output(noisy[:d], DEFAULT_F), "count": Output(noisy[d:], 0),  # type: ignore[arg-type]
            "noise_std": Output(pub[:d + 1], DEFAULT_F),  # type: ignore[arg-type]
            "epsilon": Output(pub[d + 1:], DEFAULT_F)}  # type: ignore[arg-type]


#: the computations a malicious additive (SPDZ2k) consortium runs (issue 16); with DP terms
#: (a node's policy.dp) none of them: DP noise under SPDZ2k is not built
#: (protocols.apps.dp_malicious samples on chida18 MShares only)
SPDZ2K_COMPUTATIONS = ("aggregate_sum", "aggregate_mean", "linear_regression",
                       "ridge_regression", "logistic_regression")


def raise_spdz2k_unsupported(computation: str, what: str = "") -> None:
    """MaliciousUnsupportedError (security.unsupported) naming the job and the scheme."""
    from protocols.errors import MaliciousUnsupportedError

    raise MaliciousUnsupportedError(
        f"{computation}{' with ' + what if what else ''} has no protocol for security = "
        "'malicious' with scheme = 'additive' (SPDZ2k) yet; nothing runs in semi-honest mode "
        "instead")


def check_spdz2k(m: Manifest, cfg: NodeConfig, dp: Any = None) -> None:
    """The manifest check of a malicious additive consortium (issue 16), before any data is
    read or input shared, on every node (each derives the same from the signed manifest;
    `dp`, this node's DP request, differs only if the nodes' policies do, and a refusing
    node refuses the job at every node through the agreement): the computation must be in
    SPDZ2K_COMPUTATIONS, without DP terms and without store_model (the model store keeps
    plain shares). Raises MaliciousUnsupportedError (code security.unsupported)."""
    if cfg.security != "malicious" or cfg.scheme != "additive":
        return
    if m.computation not in SPDZ2K_COMPUTATIONS:
        raise_spdz2k_unsupported(m.computation)
    if dp is not None:
        raise_spdz2k_unsupported(m.computation, "DP noise (policy.dp / parameters.epsilon)")
    if "store_model" in m.parameters:
        raise_spdz2k_unsupported(m.computation, "parameters.store_model")


async def _aggregate(ctx: JobContext) -> dict[str, Output]:
    """Column totals and the row count over all parties. Rounds: 1 (inputs in parallel).
    With DP terms agreed (a node's [policy.dp]): `_aggregate_dp`; with security =
    "malicious": `_aggregate_malicious`."""
    if ctx.s.security == "malicious":
        return await _aggregate_malicious(ctx)
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
        hyper.pop("epsilon", None)  # in the agreed DP terms (mpc.node.policy.agree_dp)
        residual = hyper.pop("residual_bound", None)
        dp = None if ctx.dp is None else _ml_dp(ctx, partition, residual)
        ctx.log("train", model=model, partition=partition, shape=list(ctx.X.shape),
                dp=None if dp is None else dp["mechanism"])
        sm = await ml.train(ctx.s, model, ctx.X, ctx.y, partition=partition, dp=dp, **hyper)
        f = getattr(sm, "f", DEFAULT_F)
        if store is not None:  # kept as shares at every node; nothing is released
            if ctx.models is None:
                raise JobParameterError("parameters.store_model: this node keeps no models")
            if ctx.s.security == "malicious":
                # issue 16: verify before the shares leave the computation (as before any
                # release): a cheat in training is caught here on every honest node and
                # nothing is stored; only [w] is kept (mpc.node.models)
                from mpc.node.checked import verify_before_release

                await verify_before_release(ctx.s)
            ctx.models.save(store, sm, ctx.s.domain, job_id=ctx.manifest.job_id,
                            analyst=ctx.manifest.analyst_key.hex(), security=ctx.s.security)
            ctx.log("stored", model=store)
            return {}
        out = {"coef": Output(sm.coef, f), "intercept": Output(sm.intercept, f)}
        if dp is not None:  # what the release states: the noise and epsilon
            st = sm.info["dp"]
            # per coefficient (original units), then the intercept
            out["noise_std"] = Output(public_share(ctx.s, st["output_noise_std"], DEFAULT_F),
                                      DEFAULT_F)
            out["epsilon"] = Output(public_share(ctx.s, [st["epsilon"]], DEFAULT_F), DEFAULT_F)
        return out

    return run


def _ml_dp(ctx: JobContext, partition: str, residual: float | None) -> dict[str, Any]:
    """The training job's DP terms for protocols.apps.ml.train(dp=...): the agreed epsilon,
    delta and mechanism, and the feature bounds every party's policy states (horizontal: the
    union of the parties' bounds per column, so every row is clipped at least as much as the
    mapped range; vertical: every party's columns in party order, as the inputs are)."""
    terms = ctx.dp or {}
    bounds = terms.get("bounds", {})
    if set(bounds) != set(range(ctx.s.n)):
        raise JobDataError(codes.POLICY_BOUNDS, "a party states no bounds for its columns")
    per = [np.asarray(bounds[o], dtype=np.float64).reshape(-1, 2) for o in range(ctx.s.n)]
    if partition == "horizontal":
        if len({b.shape for b in per}) != 1:
            raise JobDataError(codes.POLICY_BOUNDS, "the parties' bounds do not fit the columns")
        st = np.stack(per)
        b = np.stack([st[:, :, 0].min(0), st[:, :, 1].max(0)], axis=1)
    else:
        b = np.concatenate(per, 0)
    out: dict[str, Any] = {"epsilon": float(terms["epsilon"]), "delta": float(terms["delta"]),
                           "mechanism": terms["mechanism"], "bounds": b.tolist()}
    if residual is not None:
        out["residual_bound"] = float(residual)
    return out


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


#: protocols.apps.ml.train hyperparameters (train itself rejects ones its solver does not take)
_ML_PARAMS: dict[str, Any] = {
    "alpha": (int, float), "solver": str, "solver_iters": int, "f_solve": int,
    "feature_scale": list, "l2": (int, float), "batch_size": int, "epochs": int,
    "lr": (int, float), "schedule": str, "lr_decay": (int, float), "class_weight": (str, dict),
    "sigmoid": str, "shuffle_seed": int, "standardize": bool, "partition": str,
    "id_column": str, "store_model": str,
    # issue 13: DP on the coefficients (mpc.node.policy.dp_request; protocols.apps.ml.private)
    "epsilon": (int, float), "residual_bound": (int, float),
}
_AGG_PARAMS: dict[str, Any] = {"epsilon": (int, float)}


def _ml_spec(name: str, model: str) -> JobSpec:
    return JobSpec(name, _ml_job(model), needs_label=True, requires=("protocols.apps.ml",),
                   params=_ML_PARAMS, validate=_validate_ml(name),
                   extra_columns=lambda m, party: ([m.parameters["id_column"]]
                                                   if "id_column" in m.parameters else []))


from mpc.node import fraud_jobs as fj  # noqa: E402 (it imports the types above)

REGISTRY: dict[str, JobSpec] = {
    "aggregate_sum": JobSpec("aggregate_sum", _aggregate, params=_AGG_PARAMS),
    "aggregate_mean": JobSpec("aggregate_mean", _aggregate, params=_AGG_PARAMS),
    "linear_regression": _ml_spec("linear_regression", "linear"),
    "ridge_regression": _ml_spec("ridge_regression", "ridge"),
    "logistic_regression": _ml_spec("logistic_regression", "logistic"),
    "fraud_score": JobSpec("fraud_score", fj.fraud_score, every_party_inputs=False,
                           requires=("protocols.apps.fraud",), params=fj.FRAUD_PARAMS,
                           validate=fj.validate, extra_columns=fj.extra_columns,
                           check_data=fj.check_data),
    "fraud_aggregate": JobSpec("fraud_aggregate", fj.fraud_aggregate, every_party_inputs=False,
                               requires=("protocols.apps.fraud",), params=fj.FRAUD_AGG_PARAMS,
                               validate=fj.validate, extra_columns=fj.extra_columns,
                               check_data=fj.check_data),
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
