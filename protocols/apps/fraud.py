"""Fraud scoring over shares with features split across banks, and k-suppressed aggregates.

Rows are transactions of the querying bank (`owner`), aligned across banks by a shared id;
every bank passes its columns for those rows (the owner: amount, time, merchant...; the
others: what they know of the counterparty). The model is a SharedModel (coefficients stay
shared) or public (coef, intercept).

    z = X coef + intercept   (public model: each bank computes its partial score X_b coef_b
                              locally and inputs it, 1 round; shared model: the columns are
                              input and one matrix-triple product computes z)
    flags = [z > logit(threshold)]   (threshold on the probability; the logistic function is
                              monotone, so no sigmoid is needed for the flags) or [z > threshold]
                              for non-probabilistic models
    proba = sigmoid(z)        only if the scores themselves are to be revealed

Only `reveal_to` (the querying bank) learns its transactions' flags (and scores if asked);
the flags stay shared for aggregates. `flagged_counts` reveals per public group the number of
flagged transactions, only for groups with at least k_min members.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from protocols import beaver, nonlinear
from protocols.apps.ml._base import SharedModel, decode, encode, input_all, pub, sum_inputs
from protocols.arith.fixedpoint import DEFAULT_F
from protocols.comparison import ltz
from protocols.core import open as open_shares
from protocols.core import reveal_to as core_reveal_to
from protocols.errors import InputRangeError, ParameterError, ShapeMismatch
from protocols.session import Session, Share, concatenate
from protocols.truncation import trunc


@dataclass
class Scores:
    """score: shared scores (f bits; probabilities if proba); flags: shared 0/1 or None;
    revealed_flags / revealed_scores: at reveal_to only (None elsewhere or if not asked)."""

    score: Share
    flags: Share | None
    revealed_flags: np.ndarray | None = None
    revealed_scores: np.ndarray | None = None


async def score(
    s: Session, model_or_public_coef: SharedModel | tuple[npt.ArrayLike, float], X_local_cols: np.ndarray | None, *, owner: int,
    threshold: float | None, reveal_to: int, proba: bool, reveal_scores: bool = False,
    sigmoid: str = "smooth", f: int = DEFAULT_F,
) -> Scores:
    """Score the owner's transactions; see the module docstring.

    model_or_public_coef: a SharedModel, or (coef, intercept) known to every party (coef
    over all banks' columns in party order). X_local_cols: this bank's columns (N, d_b) or
    None. threshold: on the probability if proba (flags = [p > threshold]), else on z.
    reveal_scores: also reveal the scores (probabilities if proba) to reveal_to.
    Rounds: 2 (public model) / 3 (shared) + ltz 8 for flags + sigmoid if scores are
    revealed as probabilities + 1 reveal.  Security: semi-honest; reveal_to learns flags
    (and scores if asked) of these rows only.
    """
    X = None if X_local_cols is None else np.asarray(X_local_cols, dtype=np.float64)
    if X is not None and X.ndim == 1:
        X = X[:, None]
    if isinstance(model_or_public_coef, SharedModel):
        m = model_or_public_coef
        cols = await input_all(s, encode(s, X, f) if X is not None and X.size else None)
        cols = [c for c in cols if c.size]
        Xs = concatenate(cols, 1)
        if Xs.shape[1] != m.n_features:
            raise ShapeMismatch(f"the model has {m.n_features} features, the banks hold {Xs.shape[1]}")
        zr = await beaver.matmul(s, Xs, m.coef)  # f + m.f bits
        z = await trunc(s, zr, m.f) + bcast0(m.intercept, zr.shape)
    else:
        coef, intercept = model_or_public_coef
        coef = np.asarray(coef, dtype=np.float64)
        sizes = await _col_counts(s, 0 if X is None else X.shape[1])
        off = sum(sizes[: s.pid])
        mine = coef[off : off + sizes[s.pid]]
        if sum(sizes) != len(coef):
            raise ShapeMismatch(f"coef has {len(coef)} entries, the banks hold {sum(sizes)} columns")
        partial = X @ mine if X is not None and X.size else None
        n_rows = await _rows(s, owner, partial)
        z = await sum_inputs(s, encode(s, partial if partial is not None else np.zeros(n_rows), f))
        z = z + pub(intercept, f)
    flags = None
    if threshold is not None:
        t = float(np.log(threshold / (1 - threshold))) if proba else float(threshold)
        flags = await ltz(s, -z + pub(t, f))  # [t < z]
    out = z
    if proba and reveal_scores:
        out = await (nonlinear.sigmoid(s, z, f) if sigmoid == "smooth" else nonlinear.sigmoid_piecewise(s, z, f))
    res = Scores(out, flags)
    if flags is not None:
        v = await core_reveal_to(s, flags, reveal_to)
        res.revealed_flags = None if v is None else s.domain.to_signed(v).astype(np.int64)
    if reveal_scores:
        v = await core_reveal_to(s, out, reveal_to)
        res.revealed_scores = None if v is None else decode(s, v, f)
    return res


def bcast0(x: Share, shape: tuple[int, ...]) -> Share:
    return Share(np.ascontiguousarray(np.broadcast_to(x.data, shape)), x._s)


async def _col_counts(s: Session, mine: int) -> list[int]:
    """Every bank's number of columns (public: the model's layout)."""
    got = await input_all(s, s.public(np.array([mine])))
    opened = await open_shares(s, *got)
    return [int(s.domain.to_signed(v)[0]) for v in opened]


async def _rows(s: Session, owner: int, partial: np.ndarray | None) -> int:
    n = await _col_counts(s, 0 if partial is None else len(partial))
    return n[owner]


async def flagged_counts(
    s: Session, flags: Share, groups: np.ndarray, *, k_min: int, reveal_to: int | None,
    min_on: str = "members",
) -> dict[Any, int] | None:
    """Per public group key, the number of flagged rows, released only for groups with at
    least k_min members (min_on="members": the public group size) or at least k_min flagged
    rows (min_on="flagged": decided by a secure comparison, and only the pass/fail bits are
    opened). Suppressed groups are absent from the result and their counts never leave
    shared form. Returns {group: count} at reveal_to (all parties if None), None elsewhere.
    Rounds: 1 (members) / ltz + 2 (flagged).
    """
    groups = np.asarray(groups)
    if groups.shape != flags.shape:
        raise ShapeMismatch(f"groups {groups.shape} and flags {flags.shape} differ")
    if k_min < 1:
        raise ParameterError("k_min must be >= 1")
    keys, inv, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    onehot = (inv[None, :] == np.arange(len(keys))[:, None]).astype(np.int64)
    counts = flags @ onehot.T  # local: a public 0/1 matrix times shared flags
    if min_on == "members":
        keep = sizes >= k_min
    elif min_on == "flagged":
        below = await ltz(s, counts - k_min)
        (b,) = await open_shares(s, below)
        keep = s.domain.to_signed(b).astype(np.int64) == 0
    else:
        raise ParameterError("min_on must be 'members' or 'flagged'")
    idx = np.flatnonzero(keep)
    if len(idx) == 0:
        return {} if reveal_to is None or s.pid == reveal_to else None
    sel = counts[idx]
    v: np.ndarray | None
    if reveal_to is None:
        (v,) = await open_shares(s, sel)
    else:
        v = await core_reveal_to(s, sel, reveal_to)
        if v is None:
            return None
    vals = s.domain.to_signed(v).astype(np.int64)
    return {keys[i].item(): int(c) for i, c in zip(idx, vals, strict=True)}


#: columns of the one-hot check's public coefficients drawn at once (`check_onehot`)
_GAMMA_BLOCK = 1 << 16


class OneHotError(InputRangeError):
    """A shared group matrix is not one-hot (a row does not sum to 1 or an entry is not 0/1)."""

    code = "input.onehot"


async def check_onehot(s: Session, G: Share, *, checks: int | None = None) -> None:
    """Verify under MPC that every row of the shared (N, K) matrix G is a unit vector:
    entries in {0, 1} (g (g - 1) = 0) and row sums 1, without revealing G.

        T = [g (g - 1) for every entry] ++ [rowsum - 1 for every row]     (1 product round)
        gamma: public coefficients drawn from a jointly opened random seed, after G is shared
        v_c = sum_i gamma_ci T_i  for c < checks, over GF(p) times a fresh shared random
              mask rho_c (not over Z_2^64, where a mask could zero it); open(v): all 0

    A valid G gives v = 0 (nothing revealed). An invalid one (e.g. the malicious owner's
    e_t + k e_d: its row sums to 1 + k, its entry k has k (k - 1) != 0) gives a nonzero
    combination except with probability 1/p per check over GF(p), 1/2 per check over
    Z_2^64 (a zero divisor), so `checks` defaults to 1 over a field and 40 over the ring;
    the mask rho makes a nonzero v uniform over GF(p), so a cheater's values are not
    revealed either (over Z_2^64 the opened combinations of a cheater's entries are). Sum-check batching as in Corrigan-Gibbs and Boneh, "Prio", NSDI 2017,
    Sec. 4 (valid-input proofs by random linear combination).

    Rounds: 4 over GF(p) (product, seed opening, the masks' product, the result opening),
    3 over Z_2^64.  Bytes: one product of N*K (and of `checks` over GF(p)), openings of
    1 + checks elements.  Preprocessing: N*K (+ checks) triples, 1 (+ checks) randoms.  Security: semi-honest parties; catches a malicious *input*
    (T28's one-hot form).  Raises: OneHotError on every party (the same opened value).
    """
    N, K = G.shape
    if checks is None:
        checks = 1 if s.domain.is_field else 40
    gm1 = G - 1
    sq = await beaver.mul(s.child("g2"), G, gm1)
    T = concatenate([sq.reshape(-1), (G.sum(axis=1) - 1).reshape(-1)], 0)
    seed_sh = Share(await s.prep.randoms((1,)), s)
    (seed,) = await open_shares(s.child("seed"), seed_sh)
    from protocols.prg import CryptoRNG

    rng = CryptoRNG.from_seed(bytes(np.ascontiguousarray(s.domain.to_wire(seed)).tobytes()),
                              "onehot-gamma", s.sid or b"")
    # gamma (checks x len(T)) drawn and applied in column blocks: over Z_2^64 (40 checks) one
    # gamma as large as 40 x T was the peak of the job's memory (hard4)
    tv, acc = T.data.reshape(-1, 1), s.domain.zeros((checks, 1))
    for b in range(0, tv.shape[0], _GAMMA_BLOCK):
        blk = tv[b : b + _GAMMA_BLOCK]
        acc = s.domain.add(acc, s.domain.matmul(s.domain.random(rng, (checks, blk.shape[0])), blk))
    v = Share(acc.reshape(-1), s)
    if s.domain.is_field:  # over Z_2^64 a mask could zero a nonzero v (zero divisors)
        rho = Share(await s.prep.randoms((checks,)), s)
        v = await beaver.mul(s.child("rho"), rho, v)
    (out,) = await open_shares(s.child("open"), v)
    if np.any(s.domain.to_int(out) != 0):
        raise OneHotError("the group input is not one-hot")
