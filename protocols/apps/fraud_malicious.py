"""Fraud scoring and k-suppressed group counts with malicious security (Shamir, t < n/2):
protocols.apps.fraud's vertical jobs (public model) on MShares of protocols.malicious
[CGHIKLN18], with every owner's input checked under MPC before use.

    each bank b: partial_b = X_b coef_b (local), encoded with f bits and saturated to the
                 range (`saturated_partial`: no data-dependent refusal), input as the
                 RANGE_BITS bits of partial_b + 2^(RANGE_BITS-1) (one MShare per bit)
    range check: every input bit is 0 or 1: T = bit * (bit - 1) (checked products) must be 0
    z = sum_b (sum_i 2^i bit_bi - 2^(RANGE_BITS-1)) + intercept    (so |partial_b| < 2^(B-1))
    flags = [z > t]                       malicious.ltz
    aggregate: G (N, K) input by the owner, checked one-hot: T = g (g - 1) and rowsum - 1
               (the vertical job's G has K + 1 columns, the last "no group", dropped)
               counts = flags G (checked matmul), sizes = 1 G, released = [sizes >= k] [counts
               >= k] (ltz, checked products), kept = released * counts

The zero checks (`zero_check`) are one random linear combination [Corrigan-Gibbs and Boneh,
"Prio", NSDI 2017, sec. 4] with public coefficients from a coin opened after the inputs are
fixed (malicious.open verifies every input and product first), times a fresh random MShare
rho (so a cheater's combination opens as a uniform element, revealing nothing of its
values): sum_k gamma_k T_k != 0 except with probability 1/p for a non-zero T, and then
rho * v = 0 only if rho = 0 (1/p). A non-zero result raises a typed input error (OneHotError,
code input.onehot; InputRangeError for the range) naming the input's owner, on every party,
before any output; a cheater in the checked products is caught by the verification
(security.cheating_detected).
  [CGHIKLN18] Chida, Genkin, Hamada, Ikarashi, Kikuchi, Lindell, Nof, CRYPTO 2018.
Rounds: inputs 2 (shapes) + 4, bits check 2 + open 5 + 2 + open 5, ltz 9 (+ masks), then
reveal_to 5; aggregate: one-hot 2 + 2 + open 5, matmul 2, ltz 9 (+ masks), products 4, verify.
Bytes: (n - 1) * B * N * e per bank for the bit inputs (B = RANGE_BITS), plus the products'.
A stored (shared) model, authenticated under the session's key (issue 16; mpc.node
.fraud_mjobs.load_model, chida18.authenticate), replaces the bank partials by inputs of the
banks' columns and one checked product (`shared_model_scores`).
Security: malicious with abort; reveals what the semi-honest jobs reveal (the banks' column
counts, the owner's row count). The horizontal aggregate (every bank its own rows, a public
model) is mpc.node.fraud_mjobs.fraud_aggregate_horizontal: per-group counts input by each
bank, then `suppress`; with DP terms the node adds noise from protocols.apps.dp_malicious
between `group_totals` and `suppress`. Not covered (MaliciousUnsupportedError): the smooth
sigmoid; a stored model in the horizontal aggregate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from protocols import malicious as mal
from protocols.apps.fraud import OneHotError
from protocols.apps.ml._base import decode, pub
from protocols.arith.domain import Domain
from protocols.arith.fixedpoint import DEFAULT_F
from protocols.errors import (
    InputRangeError,
    MaliciousUnsupportedError,
    ParameterError,
    ShapeMismatch,
)
from protocols.malicious.batch import agree_ints, concat, refresh_many, zero_check, zero_check_each
from protocols.malicious.chida18 import MShare, agree_statuses, input_announced
from protocols.malicious.nonlinear import piecewise_sigmoid_raw
from protocols.session import Session

#: bits of a bank's range-checked partial score input: |partial| < 2^(RANGE_BITS - 1 - f)
#: (2^23 with f = 16), so z stays far inside ltz's range (|z| < 2^63)
RANGE_BITS = 40


class PartialScoreRangeError(InputRangeError):
    """A bank's input failed its range check under MPC (not RANGE_BITS bits); `owners` names
    the banks whose input failed."""

    code = "input.range"

    def __init__(self, message: str, *, owners: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.owners = owners


async def input_bits(s: Session, vals: np.ndarray | None, owners: list[int], count: int,
                     bits: int = RANGE_BITS) -> dict[int, MShare]:
    """Every bank in `owners` inputs `count` signed integers as `bits` bits each; returns
    {owner: the (count,) MShare of sum_i 2^i bit_i - 2^(bits-1)} after checking every bit
    under MPC. Raises PartialScoreRangeError (naming the owners whose bits are not 0/1: a
    deviating owner); InputRangeRefusedError (code input.range) at every party naming the
    honest owners whose own value does not fit: such an owner inputs nothing and sends a
    typed refusal in the input protocol (`input_announced`) instead, so nothing of it is sent
    and nothing is opened; the statuses are echoed (`agree_statuses`, 1 round), so an owner
    telling one party "refused" and another "accepted" is caught at every honest party
    (CheatingDetectedError, check "input.status").
    Rounds: 4 per owner (one after the other) + 1 (the echo) + the range check's."""
    D = s.domain
    mine = None
    refused = False
    if vals is not None:
        v = np.asarray(vals, dtype=np.int64) + np.int64(1 << (bits - 1))
        if np.any(v < 0) or np.any(v >= (1 << bits)):
            refused = True
        else:
            mine = D.from_int((v[None, :] >> np.arange(bits, dtype=np.int64)[:, None]) & 1)
    got: dict[int, MShare] = {}
    statuses = []
    for o in owners:  # every owner's round runs: the parties stay in step
        got[o], st = await input_announced(s, mine if o == s.pid else None, o, (bits, count),
                                           refused=refused and o == s.pid)
        statuses.append(st)
    # issue 16: the statuses echoed (1 round), so an owner that equivocates its status is
    # caught alike at every honest party before anything else is computed
    await agree_statuses(s, list(owners), statuses, bits=bits)
    B = concat([got[o].reshape(1, bits, count) for o in owners], 0)
    sq = await mal.mul(s, B, B - 1)
    oks = await zero_check_each(s, [sq[i] for i in range(len(owners))], "range")
    bad = tuple(o for o, ok in zip(owners, oks, strict=True) if not ok)
    if bad:
        raise PartialScoreRangeError(f"the input of party(ies) {list(bad)} failed the range check "
                                     f"({bits} bits) under MPC", owners=bad)
    out = {}
    for o in owners:
        (b,) = await refresh_many(s, got[o])
        acc = b[bits - 1]
        for i in range(bits - 2, -1, -1):
            acc = acc + acc + b[i]
        out[o] = acc - (1 << (bits - 1))
    return out


def saturated_partial(X: np.ndarray, coef: np.ndarray, f: int = DEFAULT_F,
                      bits: int = RANGE_BITS) -> np.ndarray:
    """A bank's partial scores X coef with f fractional bits, saturated to the input range
    [-2^(bits-1), 2^(bits-1)) (pure). An honest bank saturates rather than refuses: the
    analyst picks coef, so a refusal (InputRangeRefusedError, named to every party and in the
    job's status) would tell it whether max |x coef| >= 2^(bits-1-f) for coef of its choice,
    one bit per job, and a binary search over jobs recovers one row's value, outside any DP
    accounting. A saturated partial (|x coef| >= 2^23 with f = 16) changes a flag only when
    another bank's partial is as extreme (the semi-honest job wraps there instead)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    v = np.asarray(X, dtype=np.float64) @ np.asarray(coef, dtype=np.float64) * float(1 << f)
    v = np.nan_to_num(v, nan=0.0, posinf=float(hi), neginf=float(lo))  # inf - inf: no value
    return np.rint(np.clip(v, lo, hi)).astype(np.int64)


@dataclass
class MScores:
    score: MShare
    flags: MShare | None
    revealed_flags: np.ndarray | None = None
    revealed_scores: np.ndarray | None = None



async def _agree_columns(s: Session, X_local_cols: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray]:
    """This bank's columns as a 2-D float64 array (or None) and the agreed table of every
    bank's (columns, rows) (batch.agree_ints: 2 rounds, echo-checked)."""
    X = None if X_local_cols is None else np.asarray(X_local_cols, dtype=np.float64)
    if X is not None and X.ndim == 1:
        X = X[:, None]
    cols = 0 if X is None else X.shape[1]
    rows = 0 if X is None or not cols else X.shape[0]
    return X, await agree_ints(s, np.array([cols, rows]))

async def score(
    s: Session, coef_intercept: tuple[npt.ArrayLike, float] | Any, X_local_cols: np.ndarray | None, *,
    owner: int, threshold: float | None, reveal_to: int, proba: bool, reveal_scores: bool = False,
    sigmoid: str = "piecewise", f: int = DEFAULT_F, _reveal: bool = True,
) -> MScores:
    """fraud.score with malicious security (module docstring): a public model (coef,
    intercept), or a stored model already authenticated under this session's key (an
    MSharedModel: `shared_model_scores`). With _reveal=False the flags stay shared
    (fraud_aggregate)."""
    if reveal_scores and proba and sigmoid != "piecewise":
        raise MaliciousUnsupportedError("malicious fraud scores: sigmoid='piecewise' only")
    if not isinstance(coef_intercept, tuple):
        if not isinstance(getattr(coef_intercept, "coef", None), MShare):
            raise MaliciousUnsupportedError("malicious fraud scoring takes a public (coef, intercept) "
                                            "or an authenticated stored model (MSharedModel)")
        z = await shared_model_scores(s, coef_intercept, X_local_cols, owner=owner, f=f)
        return await _flags(s, z, threshold=threshold, reveal_to=reveal_to, proba=proba,
                            reveal_scores=reveal_scores, f=f, _reveal=_reveal)
    coef = np.asarray(coef_intercept[0], dtype=np.float64)
    intercept = float(coef_intercept[1])
    X, table = await _agree_columns(s, X_local_cols)
    sizes = [int(v) for v in table[:, 0]]
    cols = sizes[s.pid]  # this bank's own row of the table
    if sum(sizes) != len(coef):
        raise ShapeMismatch(f"coef has {len(coef)} entries, the banks hold {sum(sizes)} columns")
    N = int(table[owner, 1])
    holders = [j for j in range(s.n) if sizes[j] > 0]
    if any(int(table[j, 1]) != N for j in holders):
        raise ShapeMismatch(f"the banks hold different row counts {table[:, 1].tolist()}")
    off = sum(sizes[: s.pid])
    partial = None
    if cols:
        assert X is not None
        partial = saturated_partial(X, coef[off : off + cols], f)
    parts = await input_bits(s, partial, holders, N)
    z = parts[holders[0]]
    for j in holders[1:]:
        z = z + parts[j]
    z = z + pub(intercept, f)
    return await _flags(s, z, threshold=threshold, reveal_to=reveal_to, proba=proba,
                        reveal_scores=reveal_scores, f=f, _reveal=_reveal)


async def _flags(s: Session, z: MShare, *, threshold: float | None, reveal_to: int, proba: bool,
                 reveal_scores: bool, f: int, _reveal: bool) -> MScores:
    """From the scores z (f bits): the flags [z > t] and what is revealed to `reveal_to`."""
    flags = None
    if threshold is not None:
        t = float(np.log(threshold / (1 - threshold))) if proba else float(threshold)
        flags = await mal.ltz(s, (-z) + pub(t, f))  # [t < z]
    out = z
    if proba and reveal_scores:
        (z,) = await refresh_many(s, z)
        out = await piecewise_sigmoid_raw(s, z * (1 << f), f)
    res = MScores(out, flags)
    if flags is not None and _reveal:
        v = await mal.reveal_to(s, flags, reveal_to)
        res.revealed_flags = None if v is None else s.domain.to_signed(v).astype(np.int64)
    if reveal_scores:
        (out,) = await refresh_many(s, out)
        v = await mal.reveal_to(s, out, reveal_to)
        res.revealed_scores = None if v is None else decode(s, v, f)
    return res


def model_bits(D: Domain, d: int) -> int:
    """The signed width w of a stored model's coefficients and intercept and of the feature
    inputs scored with it (`shared_model_scores`): range_bits(D, 4 d), so that d products
    of two w-bit values stay below 2^(l-3) (l = value_bits: 64 on GF(2^127 - 1)); then
    |X w| < 2^(l-3) for the truncation, and z = trunc(X w, f) + b keeps z 2^f + 2^(2f-1)
    < 2^(l-1) for the piecewise sigmoid of revealed scores (30 bits for d = 4: features and
    coefficients up to 2^13 with f = 16)."""
    return mal.range_bits(D, 4 * max(int(d), 1))


async def shared_model_scores(s: Session, model: Any, X_local_cols: np.ndarray | None, *, owner: int,
                              f: int = DEFAULT_F) -> MShare:
    """z = X coef + b for a stored (shared) model under malicious security, the owner's rows
    with the features split across banks (vertical, party order), as fraud.score's shared
    branch: every bank inputs its columns, one checked matrix product, one truncation.

        coef, b:  model.coef (d,), model.intercept (), MShares under this session's key
                  (a stored [w] authenticated by chida18.authenticate: mpc.node.fraud_mjobs)
        clip:     coef, b to +-(2^(w-1) - 1), w = `model_bits(d)` (batch.clip_many, exact:
                  an honest model in range is unchanged; a larger one is bounded, so that no
                  masked opening below sees a value outside its range). The clip's own
                  comparisons need |coef| < 2^(l-2): a model stored by a malicious job
                  (the only kind a malicious job loads, mpc.node.models) is an output of
                  protocols.apps.ml.malicious, which keeps every value below that bound
                  ("bounded intermediates")
        X_b:      every bank's columns (N, d_b), f bits, saturated to the w-bit range by the
                  bank (as `saturated_partial`: no data-dependent refusal) and input
                  range-checked (malicious.input_many, bits=w)
        z = trunc(X coef, model.f) + b      (malicious.matmul, malicious.trunc)

    A bank's stored share that differs from the one it was given only acts as an additive
    attack on the authentication's and the product's reductions (chida18.authenticate): the
    honest banks' shares fix the model, and every deviation is caught at the next
    verification, before anything is revealed.
    Rounds: agree_ints 2 + clip (ltz 9 + 2, + its masks) + inputs 7 + matmul 2 + trunc (its
    verification first: the inputs' range check).
    Raises: ShapeMismatch (the banks' columns do not add up to the model's features, or
    their row counts differ), InputRangeCheatingError (a bank's input bits), CheatingDetectedError."""
    from protocols.malicious.batch import bcast, clip_many

    X, table = await _agree_columns(s, X_local_cols)
    sizes = [int(v) for v in table[:, 0]]
    cols = sizes[s.pid]  # this bank's own row of the table
    d = int(model.n_features)
    if int(model.f) != f:  # the intercept is added at f bits, as fraud.score's shared branch
        raise ParameterError(f"the stored model has {model.f} fractional bits, the scores {f}")
    if sum(sizes) != d or model.coef.shape != (d,):
        raise ShapeMismatch(f"the stored model has {d} features, the banks hold {sum(sizes)} columns")
    N = int(table[owner, 1])
    holders = [j for j in range(s.n) if sizes[j] > 0]
    if any(int(table[j, 1]) != N for j in holders):
        raise ShapeMismatch(f"the banks hold different row counts {table[:, 1].tolist()}")
    w = model_bits(s.domain, d)
    hi = (1 << (w - 1)) - 1
    coef, icpt = await refresh_many(s, model.coef, model.intercept.reshape(1))
    (packed,) = await clip_many(s, [(concat([coef, icpt]), -hi, hi)])
    mine = None
    if cols:
        assert X is not None
        v = np.nan_to_num(X * float(1 << f), nan=0.0, posinf=float(hi), neginf=float(-hi))
        mine = s.domain.from_int(np.rint(np.clip(v, -hi, hi)).astype(np.int64))
    got = await mal.input_many(s, mine, {j: (N, sizes[j]) for j in holders}, bits=w)
    Xs = concat([got[j] for j in holders], 1)
    zr = await mal.matmul(s, Xs, packed[:d])
    t = await mal.trunc(s, zr, int(model.f))
    t, b = await refresh_many(s, t, packed[d:])
    return t + bcast(b.reshape(()), t.shape)


async def check_onehot(s: Session, G: MShare, owner: int) -> None:
    """Every row of G is a unit vector (entries 0/1, row sums 1), checked under MPC with
    checked products; OneHotError naming the owner otherwise."""
    sq = await mal.mul(s, G, G - 1)
    (G,) = await refresh_many(s, G)
    T = concat([sq.reshape(sq.size), G.sum(axis=1) - 1], 0)
    if not await zero_check(s, T, "onehot"):
        raise OneHotError(f"party {owner}'s group input is not one-hot")


async def group_counts(s: Session, flags: MShare, G_local: np.ndarray | None, owner: int, K: int,
                       k: int) -> tuple[MShare, MShare]:
    """G input by the owner and checked one-hot; (kept counts, released) per group."""
    counts, sizes = await group_totals(s, flags, G_local, owner, K)
    return await suppress(s, counts, sizes, k)


async def group_totals(s: Session, flags: MShare, G_local: np.ndarray | None, owner: int,
                       K: int) -> tuple[MShare, MShare]:
    """G input by the owner and checked one-hot; (flagged counts, sizes) per group, both
    under the current key."""
    N = flags.shape[0]
    G = await mal.input_unchecked(s.child("groups"), G_local, owner, (N, K))
    await check_onehot(s, G, owner)
    flags, G = await refresh_many(s, flags, G)
    counts = (await mal.matmul(s, flags.reshape(1, N), G)).reshape(K)
    (G,) = await refresh_many(s, G)
    return counts, G.sum(axis=0)


async def group_totals_chunked(s: Session, flags: MShare, keys: np.ndarray | None, groups: np.ndarray,
                               owner: int, chunks: list[tuple[int, int]]) -> tuple[MShare, MShare]:
    """`group_totals` over row ranges (`chunks`, [start, stop) covering flags' rows, public):
    the owner builds and inputs the one-hot rows of one range at a time from its keys (None
    elsewhere; K + 1 columns, the last "none of the groups", dropped after the count), each
    range is checked one-hot and counted as `group_totals` does, and the per-group totals are summed (the earlier ranges' sums refreshed under the current key).
    The same (counts, sizes) as one `group_totals` over every row, while a party holds only
    one range's matrix (hard4: 10^5 rows x 4096 groups in one piece was ~100 GB per party).
    Rounds: len(chunks) x (`group_totals`' + 2 for the refresh of the running sums) (the
    first range's refresh: 0).   Raises: as `group_totals` (the owner named per range)."""
    K = len(groups)
    counts: MShare | None = None
    sizes: MShare | None = None
    for i0, i1 in chunks:
        G_local = None
        if keys is not None:
            # review4: the last column is "none of the groups" (as the semi-honest job's
            # `onehot`): a key outside `groups` is counted nowhere, not an input error (that
            # failure answered the analyst's membership probe and blamed an honest owner)
            # float comparison, as the semi-honest job's `onehot` (a key 3.5 is in no group)
            hit = np.asarray(keys[i0:i1], dtype=np.float64)[:, None] == np.asarray(groups, dtype=np.float64)[None, :]
            G_local = s.public(np.concatenate([hit, ~hit.any(axis=1, keepdims=True)], axis=1).astype(np.int64))
        c, z = await group_totals(s, flags[i0:i1], G_local, owner, K + 1)
        c, z = c[:K], z[:K]
        if counts is None or sizes is None:
            counts, sizes = c, z
        else:
            counts, sizes = await refresh_many(s, counts, sizes)
            counts, sizes = counts + c, sizes + z
    assert counts is not None and sizes is not None
    return counts, sizes


#: the largest k of the k-suppression: far above any group's size, and low enough that
#: size - k stays inside malicious.ltz's range |v| < 2^63 for every value suppress may see
#: (counts < 2^43, DP noise |X| <= 2^62: dp.MAX_LAPLACE_DIGITS)
MAX_K = 1 << 40


async def suppress(s: Session, counts: MShare, sizes: MShare, k: int) -> tuple[MShare, MShare]:
    """k-suppression over MShares (both (K,), under the current key, |value| < 2^62):
    released = [sizes >= k] [counts >= k] (one ltz on 2K values, one checked product),
    kept = released * counts. Returns (kept, released).
    Raises ParameterError unless 1 <= k <= MAX_K: a k beyond the comparison's range (k_min
    from the analyst, min_group_size from a peer's policy) wrapped, and k = 2^64 compared
    sizes against 0, releasing every group."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= int(k) <= MAX_K:
        raise ParameterError(f"suppress: k must be an integer in [1, {MAX_K}], got {k!r}")
    K = counts.shape[0]
    small = await mal.ltz(s, concat([sizes, counts]) - int(k))
    big = (-small) + 1
    released = await mal.mul(s, big[:K], big[K:])
    counts, released = await refresh_many(s, counts, released)
    kept = await mal.mul(s, released, counts)
    return kept, released


__all__ = ["MAX_K", "RANGE_BITS", "MScores", "PartialScoreRangeError", "check_onehot", "group_counts",
           "saturated_partial",
           "group_totals", "group_totals_chunked", "input_bits", "score", "suppress", "zero_check", "zero_check_each"]
