"""The SPDZ2k pieces the malicious trainers need beyond products, truncation and comparison:
range-checked inputs, agreed public integers, constants and array plumbing, select, relu,
clip, the batched mask preparation. All on `spdz2k.AShare`s (Z_2^64 values, MACs in
Z_2^128, malicious with abort, up to n - 1 corrupt); `protocols.malicious.backend` routes
the Shamir trainers' calls here on additive sessions.

[CDESX18] R. Cramer, I. Damgard, D. Escudero, P. Scholl, C. Xing, "SPDZ2k", CRYPTO 2018
(authenticated shares, input, the MAC check).
[DEFKSX19] I. Damgard, D. Escudero, T. Frederiksen, M. Keller, P. Scholl, N. Volgushev, "New
primitives for actively-secure MPC over rings with applications to private machine
learning", IEEE S&P 2019 (sec. IV: MACed random bits; bit decomposition of inputs).
[SecureML] P. Mohassel, Y. Zhang, IEEE S&P 2017 (select, relu, the piecewise sigmoid's clip).
[EGKRS20] D. Escudero, S. Ghosh, M. Keller, R. Rachuri, P. Scholl, CRYPTO 2020 (sec. 5.2:
msb from one masked opening and BitLT; `ltz_bits` on fewer bits for bounded values).

Range-checked input (`input_many`). A declared range -2^(w-1) <= x < 2^(w-1) (unsigned:
0 <= x < 2^w) is enforced by construction: the owner inputs the w bits b_i of
x + 2^(w-1) (x's offset form), each masked by an owner-known MACed random bit r_i:

    owner: e_i = b_i XOR r_i (public bits, packed 8 per byte, with a status byte);
    all:   [b_i] = e_i + (1 - 2 e_i) [r_i]   (linear: no round, no triple)
           [x]   = sum_i 2^i [b_i] - 2^(w-1)

e is uniform (r_i is), so it tells nothing about x; every opened e_i is a bit by the
encoding, so [x] lies in its range whatever the owner sends: the only deviations left are
sending different messages (statuses or e) to different parties (caught by an echo of the
messages' digest, one round: CheatingDetectedError, check "input.status", at every honest
party; review5) and a malformed message (a status byte other than 0/1, non-zero padding
bits: InputRangeCheatingError, check "input.range", naming the owner on every party, all
having received the same). An honest owner whose value does not fit refuses it (status 1):
InputRangeRefusedError naming it at every party, nothing of it sent. The r_i are the
source's `input_bits` kind (the dealer's), else MACed random bits revealed to the owner
(`spdz2k.reveal_to` of `spdz2k_fixed.random_bits`: + 11 rounds; the OT source).
Cost: 2 rounds (the messages, the echo); the owner sends (n - 1) (1 + ceil(w N / 8)) bytes
(vs 16 N for the unchecked `spdz2k.input`), every party (n - 1) 32 per owner for the echo.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from protocols.arith import ring128 as R
from protocols.core import _check_party
from protocols.errors import (
    DomainError,
    InputRangeError,
    InputRangeRefusedError,
    ParameterError,
    ShapeMismatch,
)
from protocols.malicious import spdz2k
from protocols.malicious import spdz2k_fixed as F
from protocols.malicious.chida18 import InputRangeCheatingError, _width, decompose
from protocols.malicious.spdz2k import AShare
from protocols.session import Session

__all__ = [
    "agree_ints", "bcast", "clip_many", "concat", "const", "input_many", "ltz_bits", "prepare_batch", "relu",
    "select", "stack",
]

_U64 = np.dtype(np.uint64)
#: a key of Session ext: [seconds, rounds, bytes, cpu seconds] spent preparing masks
#: (offline), as protocols.malicious.batch.OFFLINE (the same key: the bench reads it)
OFFLINE = "malicious-offline"


# ------------------------------------------------------------------- array plumbing ---
def _ax(axis: int, ndim: int) -> int:
    """An element axis of an (*S, 2) limb array."""
    return axis if axis >= 0 else ndim + axis


def concat(xs: Sequence[AShare], axis: int = 0) -> AShare:
    """Concatenate AShares along an element axis (local)."""
    ax = _ax(axis, xs[0].ndim)
    return AShare(np.concatenate([x.x for x in xs], axis=ax), np.concatenate([x.m for x in xs], axis=ax), xs[0]._s)


def stack(xs: Sequence[AShare], axis: int = 0) -> AShare:
    """Stack AShares of one shape along a new element axis (local)."""
    ax = _ax(axis, xs[0].ndim + 1)
    return AShare(np.stack([x.x for x in xs], axis=ax), np.stack([x.m for x in xs], axis=ax), xs[0]._s)


def bcast(x: AShare, shape: tuple[int, ...]) -> AShare:
    """x broadcast to `shape` (a copy; local)."""
    shape = tuple(shape)
    return AShare(np.ascontiguousarray(np.broadcast_to(x.x, (*shape, 2))),
                  np.ascontiguousarray(np.broadcast_to(x.m, (*shape, 2))), x._s)


async def const(s: Session, value: int | np.ndarray, shape: tuple[int, ...]) -> AShare:
    """A public constant (Z_2^64 integers) as an AShare: party 0 holds it, every MAC share is
    alpha_i * value (local)."""
    z = AShare(R.zeros(tuple(shape)), R.zeros(tuple(shape)), s)
    return z + np.broadcast_to(np.asarray(value), tuple(shape))


async def refresh_many(s: Session, *xs: AShare) -> list[AShare]:
    """SPDZ2k's MAC key never changes within a session: nothing to re-key (the Shamir
    compiler's `batch.refresh_many` counterpart)."""
    return list(xs)


# ---------------------------------------------------------------------- public ints ---
async def agree_ints(s: Session, mine: np.ndarray) -> np.ndarray:
    """Every party's small public int64 vector, the same table at every honest party or all
    abort: one round of vectors, one of the table's BLAKE2b digest (an echo check); a
    difference raises CheatingDetectedError (check "input") (as batch.agree_ints).
    Shapes: mine (k,), the same k everywhere; returns (n, k).
    Rounds: 2.   Bytes: (n - 1) (8k + 32) per party."""
    mine = np.ascontiguousarray(mine, dtype=np.int64).reshape(-1)
    got = await spdz2k._round(s, "sagree", {j: mine for j in s.peers}, {j: (mine.shape, np.int64) for j in s.peers})
    got[s.pid] = mine
    table = np.stack([got[j] for j in range(s.n)])
    dg = np.frombuffer(hashlib.blake2b(table.tobytes(), digest_size=32, person=b"smpc-spdz2k-agr").digest(),
                       dtype=np.uint8)
    echo = await spdz2k._round(s, "sagree-e", {j: dg for j in s.peers}, {j: ((32,), np.uint8) for j in s.peers})
    for j in s.peers:
        if not np.array_equal(echo[j], dg):
            await spdz2k._fail(s, "input", f"party {s.pid}: party {j} received different public input sizes")
    return table


# ------------------------------------------------------------------ checked inputs ---
async def _input_bits(s: Session, shape: tuple[int, ...], owner: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Owner-known MACed random bits: ([r], [alpha r], r (uint64 0/1) at the owner)."""
    ctx = spdz2k._ctx(s)
    fetch = getattr(ctx.prep, "input_bits", None)
    if fetch is not None:
        got: tuple[np.ndarray, np.ndarray, np.ndarray | None] = await fetch(shape, owner)
        return got
    b = await F.random_bits(s, shape)
    v = await spdz2k.reveal_to(s, b, owner)
    return b.x, b.m, v


async def _fail_range(s: Session, owners: list[int]) -> None:
    """Terminal, as spdz2k._fail, with InputRangeCheatingError naming the owners."""
    err = InputRangeCheatingError(f"cheating detected (input.range check): party(ies) {owners} sent a "
                                  "malformed range-checked input", owners=tuple(owners))
    ctx = s._state.ext[spdz2k._EXT]
    ctx.failed = "input.range"
    ctx.on_abort()
    queues = getattr(s.prep, "_queues", None)
    if isinstance(queues, dict):
        queues.clear()
    await s.abort(err)
    raise err


async def _echo_inputs(s: Session, owners: list[int], got: Mapping[int, np.ndarray]) -> None:
    """One round: every party sends every other the BLAKE2b digest of each owner's message
    it received (status and bits); a digest unlike its own, from a party other than that
    owner, is terminal (CheatingDetectedError, check "input.status", as malicious Shamir's
    status echo). Without it an owner that told one party "refused" and another "accepted"
    had the first raise InputRangeRefusedError and leave, and the second blame that honest
    party as unavailable (review5); equivocated bits are caught here too, before any use,
    rather than at the next MAC check. Honest parties with different views exchange their
    digests directly, so each of them sees the difference; an owner's echo of its own
    message is not compared (it knows what it sent: a malformed message stays named by
    "input.range"). Rounds: 1.   Bytes: (n - 1) 32 len(owners) per party."""
    dg = np.zeros((len(owners), 32), dtype=np.uint8)
    for i, o in enumerate(owners):
        h = hashlib.blake2b(got[o].tobytes(), digest_size=32, person=b"smpc-spdz2k-bie")
        dg[i] = np.frombuffer(h.digest(), dtype=np.uint8)
    echo = await spdz2k._round(s, "srange-e", {j: dg for j in s.peers}, {j: (dg.shape, np.uint8) for j in s.peers})
    if any(not np.array_equal(echo[j][i], dg[i]) for j in s.peers for i, o in enumerate(owners) if o != j):
        await spdz2k._fail(s, "input.status", f"party {s.pid}: the parties received different range-checked "
                           f"input messages from the owner(s) {owners} (an owner equivocated, or a party "
                           "misreported what it received)")


def _owner_bits(s: Session, x: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """The owner's bits of x, (bits, *shape) uint64 0/1 (raises InputRangeError if x does
    not fit; tests replace it to model a deviating owner)."""
    return np.asarray(decompose(s.domain, x, bits, signed), dtype=np.uint64)


async def input_many(s: Session, x: np.ndarray | None, shapes: Mapping[int, tuple[int, ...]], *,
                     bits: int | None = None, signed: bool = True) -> dict[int, AShare]:
    """Every owner in `shapes` inputs an array of that shape (x: this party's own, or None),
    range-checked by construction (module docstring): -2^(bits-1) <= x < 2^(bits-1)
    (signed) or 0 <= x < 2^bits, bits = chida18.range_bits(domain) (32) unless given.
    Returns {owner: AShare}.
    Rounds: 2 (+ 11 per owner for a source without input_bits).
    Bytes: an owner sends (n - 1) (1 + ceil(bits N / 8)); every party (n - 1) 32 len(owners) (the echo).
    Preprocessing: input_bits((bits, *shape), owner) per owner.
    Raises: InputRangeRefusedError (an honest owner's value does not fit; at every party),
    InputRangeCheatingError (a malformed message), CheatingDetectedError (check
    "input.status": parties received different messages), ParameterError, DomainError,
    ShapeMismatch, PartyIndexError."""
    D = s.domain
    w = _width(D, bits, signed)
    owners = sorted(int(o) for o in shapes)
    for o in owners:
        _check_party(s, o, "owner")
    if s.pid in shapes:
        if not isinstance(x, np.ndarray):
            raise DomainError(f"party {s.pid} owns an input but passed {type(x).__name__}")
        D.check(x)
        if x.shape != tuple(shapes[s.pid]):
            raise ShapeMismatch(f"input of shape {x.shape}, declared {tuple(shapes[s.pid])}")
    elif x is not None:
        raise DomainError(f"party {s.pid} passed an input but owns none")
    masks = {o: await _input_bits(s, (w, *tuple(shapes[o])), o) for o in owners}
    size = {o: w * int(np.prod(shapes[o], dtype=np.int64)) for o in owners}
    length = {o: 1 + (size[o] + 7) // 8 for o in owners}
    out: dict[int, np.ndarray] = {}
    msg = None
    if s.pid in shapes:
        assert x is not None
        msg = np.zeros(length[s.pid], dtype=np.uint8)
        try:
            B = _owner_bits(s, x, w, signed)
        except InputRangeError:
            msg[0] = 1  # refused: nothing of x is sent
        else:
            rc = masks[s.pid][2]
            assert rc is not None
            e = (B ^ rc).astype(np.uint8).reshape(-1)
            msg[1:] = np.packbits(e)
        out = {j: msg for j in s.peers}
    expect: dict[int, tuple[tuple[int, ...], Any]] = {o: ((length[o],), np.uint8) for o in owners if o != s.pid}
    got = await spdz2k._round(s, "sbits", out, expect)
    if msg is not None:
        got[s.pid] = msg
    await _echo_inputs(s, owners, got)
    ctx = spdz2k._ctx(s)
    refused, malformed = [], []
    es: dict[int, np.ndarray] = {}
    for o in owners:
        m = got[o]
        h = hashlib.blake2b(m.tobytes(), digest_size=32, person=b"smpc-spdz2k-bi")
        ctx.inputs.append((f"{s.prefix}b{o}", h.digest()))
        e = np.unpackbits(m[1:])
        if m[0] > 1 or e[size[o]:].any():
            malformed.append(o)
        elif m[0] == 1:
            refused.append(o)
        else:
            es[o] = e[: size[o]].astype(np.uint64).reshape((w, *tuple(shapes[o])))
    if malformed:
        await _fail_range(s, malformed)
    if refused:
        lo = -(1 << (w - 1)) if signed else 0
        raise InputRangeRefusedError(f"party(ies) {refused} refused their input: a value is outside its "
                                     f"declared range [{lo}, {lo + (1 << w)}) ({w} "
                                     f"{'signed' if signed else 'unsigned'} bits); nothing was opened",
                                     owners=tuple(refused))
    res: dict[int, AShare] = {}
    weights = (np.uint64(1) << np.arange(w, dtype=np.uint64)).reshape((w,) + (1,) * len(shapes[owners[0]]))
    for o in owners:
        rx, rm, _ = masks[o]
        e = es[o]
        # [b] = e + (1 - 2e) [r]: the coefficient 1 - 2e is +-1 mod 2^64
        coef = (np.uint64(1) - (e << np.uint64(1)))
        bx, bm = R.mul_u64(rx, coef), R.mul_u64(rm, coef)
        b = AShare(bx, bm, s) + e
        wt = weights.reshape((w,) + (1,) * (e.ndim - 1))
        val = AShare(R.sum(R.mul_u64(b.x, wt), axis=0), R.sum(R.mul_u64(b.m, wt), axis=0), s)
        res[o] = val - (1 << (w - 1)) if signed else val
    return res


# ------------------------------------------------------------- select, relu, clip ---
async def select(s: Session, b: AShare, x: AShare | int | np.ndarray, y: AShare | int | np.ndarray) -> AShare:
    """b ? x : y = y + b (x - y) for a 0/1 AShare b.   Rounds: 1 (0 if x and y are public).
    Bytes: (n - 1) 32 N.   Preprocessing: N triples (none if x, y are public)."""
    if isinstance(x, AShare):
        diff = x - y
    elif isinstance(y, AShare):
        diff = (-y) + x
    else:
        diff = None
    if diff is None:
        return b * (np.asarray(x, dtype=np.int64) - np.asarray(y, dtype=np.int64)) + y
    if diff.shape != b.shape:
        diff = bcast(diff, b.shape)
    return (await spdz2k.mul(s, b, diff)) + y


async def relu(s: Session, x: AShare) -> AShare:
    """max(x, 0) = (1 - [x < 0]) x (x a signed int64).   Rounds: ltz 7 + 1.
    Preprocessing: ltz's and N triples."""
    b = await F.ltz(s, x)
    return await spdz2k.mul(s, (-b) + 1, x)


async def ltz_bits(s: Session, x: AShare, bits: int) -> AShare:
    """[x < 0] for x known to satisfy |x| < 2^(bits - 1) (a proved bound, not checked):
    spdz2k_fixed.ltz's protocol [EGKRS20, sec. 5.2] on the low `bits` bits. x mod 2^bits is
    x's two's complement, (c - r) mod 2^bits with c = open(x + r + 2^64 t) (the same masks
    and the same uniform c as ltz), so

        ltz = c_(bits-1) ^ R_(bits-1) ^ BitLT(c mod 2^(bits-1), R_0..R_(bits-2))

    (bits = 64 is spdz2k_fixed.ltz). Shapes: x: S; returns S.
    Rounds: 1 + ceil(log2(ceil((bits - 1) / 2))) + 1 (7 for 40 <= bits <= 64).
    Triples online per element: those of the prefix over ceil((bits - 1) / 2) groups + 1
    (34 for bits = 39, 58 for 64).   Preprocessing: one "cmp" mask per element.
    Security: as ltz (c reveals nothing). Outside the bound the result is wrong (never
    leaked): callers pass a bound proved from checked inputs."""
    if not 2 <= int(bits) <= 64:
        raise ParameterError(f"ltz_bits: need 2 <= bits <= 64, got {bits}")
    bits = int(bits)
    if bits == 64:
        return await F.ltz(s, x)
    spdz2k._check(s, x)
    N = x.size
    m = await F._take(s, "cmp", N)
    c = await F._open_masked(s, "scmp", x.reshape(N), m)
    cb = F.public_bits(c)
    G, E = F._pair_level(m, cb, bits - 1)
    u = await F._prefix(s, G, E)
    ct = cb[bits - 1]
    v = m.R[bits - 1] * (1 - 2 * ct) + ct
    vu = await spdz2k.mul(s, v, u)
    return (v + u - vu * 2).reshape(x.shape)


async def clip_many(s: Session, items: Sequence[tuple[AShare, int | np.ndarray, int | np.ndarray]], *,
                    bits: int | None = None) -> list[AShare]:
    """clip(x, lo, hi) for every (x, lo, hi) (public bounds, lo <= hi), all comparisons in
    one ltz and all products in one Beaver round:
        b_lo = [x < lo],  b_hi = [hi < x],  x + b_lo (lo - x) + b_hi (hi - x).
    Rounds: 7 + 1.   Preprocessing: 2 comparisons and 2 triples per element.
    Range: x - lo and hi - x within int64; with `bits` (a bound proved by the caller:
    |x - lo|, |hi - x| < 2^(bits - 1)) the comparisons are `ltz_bits` (fewer triples)."""
    if not items:
        return []
    flat = [x.reshape(x.size) for x, _, _ in items]
    los = [np.broadcast_to(np.asarray(lo, dtype=np.int64), x.shape).reshape(-1) for x, lo, _ in items]
    his = [np.broadcast_to(np.asarray(hi, dtype=np.int64), x.shape).reshape(-1) for x, _, hi in items]
    cmp = concat([f - lo for f, lo in zip(flat, los, strict=True)] + [(-f) + hi for f, hi in zip(flat, his, strict=True)])
    lt = await (F.ltz(s, cmp) if bits is None else ltz_bits(s, cmp, bits))
    M = sum(f.size for f in flat)
    diffs = concat([(-f) + lo for f, lo in zip(flat, los, strict=True)] + [(-f) + hi for f, hi in zip(flat, his, strict=True)])
    prod = await spdz2k.mul(s, lt, diffs)
    out, k = [], 0
    for (x, _, _), f in zip(items, flat, strict=True):
        out.append((f + prod[k : k + f.size] + prod[M + k : M + k + f.size]).reshape(x.shape))
        k += f.size
    return out


# -------------------------------------------------------------------- mask batches ---
async def prepare_batch(s: Session, truncs: Mapping[int, int], ltz: int = 0, **_: Any) -> None:
    """Prepare the masks of future truncations ({f: count}) and `ltz` comparisons
    (spdz2k_fixed.prepare_trunc / prepare_compare; the comparisons' pair products take one
    Beaver round). The seconds, rounds and bytes are added to Session ext OFFLINE (the bench
    takes them out of the online figures)."""
    t0, c0 = time.perf_counter(), time.process_time()
    before = s.stats.copy()
    for f, cnt in truncs.items():
        if int(cnt) > 0:
            await F.prepare_trunc(s, int(cnt), int(f))
    if int(ltz) > 0:
        await F.prepare_compare(s, int(ltz))
    d = s.stats - before
    acc = s._state.ext.setdefault(OFFLINE, [0.0, 0, 0, 0.0])
    acc[0] += time.perf_counter() - t0
    acc[1] += d.rounds
    acc[2] += d.bytes_sent
    acc[3] += time.process_time() - c0
