"""Additive sharing over Z_2^64 with malicious security with abort, dishonest majority:
SPDZ2k, online phase [CDESX18].

R. Cramer, I. Damgard, D. Escudero, P. Scholl, C. Xing, "SPDZ2k: Efficient MPC mod 2^k with
Active Security and Its Application to Machine Learning", CRYPTO 2018: section 3 (the
authenticated shares and the MAC check, Fig. 3, Theorem 1), section 3.3 (the online phase,
Fig. 4). k = 64 (the values), s = 64 (the statistical parameter): shares and MACs live in
Z_2^(k+s) = Z_2^128 (protocols.arith.ring128), any n >= 2, up to n - 1 corrupt.

- The MAC key alpha = sum_i alpha_i: each party draws alpha_i in Z_2^s from its CSPRNG when
  the session is set up (`attach`); alpha_i is never sent, and is deleted on abort.
- A value x in Z_2^64 is held as ([x], [alpha * x]) over Z_2^128 (an `AShare`): party i
  holds x_i, m_i with sum x_i = x~ (x~ = x mod 2^64) and sum m_i = alpha * x~ mod 2^128.
- Linear operations are local; adding a public c: party 0 adds c to x_0, every party adds
  alpha_i * c to m_i.
- input: the owner holds a MACed random mask r (from preprocessing; the dealer or the OT
  source gives the owner r itself) and broadcasts delta = x - r mod 2^128; [x] = [r] +
  delta. delta's consistency across parties is checked at the next MAC check (a digest of
  the whole transcript), so a malicious owner cannot give parties different inputs.
- mul: Beaver [Beaver91] with a MACed triple: d = x - a, e = y - b opened (partially, 16 bytes
  per element per peer), z = c + d b + e a + d e. Partially opened values are recorded.
- check (batched MAC check, Fig. 3): a public random seed (every party commits to a
  16-byte seed, then opens it) gives coefficients chi_j in Z_2^s for every value opened since
  the last check; party i computes y = sum chi_j x~_j (public) and z_i = sum chi_j m_ij -
  alpha_i * y, commits to z_i, opens it; the check passes iff sum_i z_i = 0 mod 2^(k+s). A
  last round (a verdict: flag byte and a digest of the seeds, the z_i, the input deltas and
  the openings' tags) makes the outcome agree: a party that sees a flag or a digest unlike
  its own raises CheatingDetectedError. Opened values are not hashed: honest parties that
  saw different values of an opening (a share sent differently to different peers) compute
  their z_i with different y, which the same check catches (an error the adversary adds to
  one honest party's view is multiplied by that party's secret alpha_i). Without a
  broadcast channel the verdict round itself can lie to some parties only: those then abort
  with cheating_detected, the others at their next message (security with abort; tested).
  Soundness (Theorem 1): an adversary that changed any opened value mod 2^k passes with
  probability at most 2^(-s + log2(s + 1)) ~ 2^-57.9 for s = 64 (plus the commitments'
  collision resistance, BLAKE2b-256).
- output (`open`): first the check of everything opened so far; then [x + 2^k r] is opened
  for a MACed random r (the upper s bits of x~ are not protected: the mask hides them),
  checked again, and only then x = (x + 2^k r) mod 2^k is returned. `reveal_to` one party:
  [x - r] is opened instead, r being that party's own MACed mask, and the party adds r.
- output to an external receiver (`output_to_client`, `open_client_output`): after the check,
  every party hands the receiver [x + 2^k r], its MAC share and alpha_i; the receiver checks
  the MAC itself (the session's key is used no more).
- abort: a failed check deletes alpha_i and the pending openings, drops the buffered
  preprocessing, aborts the session (terminal) and raises CheatingDetectedError (code
  `security.cheating_detected`, naming the check: "mac", "commit", "transcript",
  "reported") on every honest party.

Preprocessing: `spdz2k_prep.Spdz2kDealer` (in-process trusted dealer, insecure, tests) or
`spdz2k_ot.Spdz2kOT` (dealer-free: vOLE MACs, OT triples with the sacrifice; each party's
own source, registered by `attach` with its alpha_i).
[Beaver91] D. Beaver, "Efficient multiparty protocols using circuit randomization", CRYPTO 1991.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from network.errors import SmpcError
from protocols.arith import ring128 as R
from protocols.core import _check_party
from protocols.errors import (
    CheatingDetectedError,
    DomainError,
    MaliciousUnsupportedError,
    SessionAbortedError,
    ShapeMismatch,
)
from protocols.malicious.spdz2k_prep import Spdz2kDealerView
from protocols.prg import CryptoRNG
from protocols.session import Session

#: bits of the values (outputs are mod 2^K) and the statistical security parameter
K, S = 64, 64
#: log2 of the MAC check's false-accept bound 2^(-s + log2(s + 1)) [CDESX18, Theorem 1]
SOUNDNESS_BITS = S - math.log2(S + 1)
#: bytes: a commitment (BLAKE2b-256), an opening nonce, a verdict (flag and transcript digest)
COMMIT_BYTES, NONCE_BYTES, VERDICT_BYTES = 32, 16, 33
_EXT = "spdz2k"
#: _Ctx.failed once alpha_i was handed to a client output (`output_to_client`)
_RELEASED = "released"
_U64 = np.dtype(np.uint64)


@dataclass(eq=False)
class _Ctx:
    alpha: np.ndarray | None  # alpha_i in Z_2^s, as a Z_2^128 element (shape (2,))
    prep: Any  # a Spdz2kDealerView (or another source with the same methods)
    #: (tag, opened values (M, 2), my MAC shares (M, 2)) since the last check
    opened: list[tuple[str, np.ndarray, np.ndarray]] = field(default_factory=list)
    #: (tag, digest of the received input deltas) since the last check
    inputs: list[tuple[str, bytes]] = field(default_factory=list)
    failed: str | None = None

    def on_abort(self) -> None:
        """The session aborted for any reason (a failed check, a transport error, a peer
        that vanished): alpha_i is zeroed in place (the preprocessing source holds the same
        array) and dropped with the pending openings; nothing MACed can be used again."""
        if self.alpha is not None:
            self.alpha.fill(0)
        self.alpha, self.opened, self.inputs = None, [], []
        self.failed = self.failed or "aborted"


def attach(s: Session, dealer: Any) -> None:
    """Set up SPDZ2k on a malicious additive session over Z_2^64: draw alpha_i in Z_2^s from
    the session's CSPRNG and register it with the preprocessing: the in-process dealer
    (`Spdz2kDealer`) or this party's dealer-free source (`spdz2k_ot.Spdz2kOT`, which keeps
    it in this process); with a shared-seed dealer copy (run_processes, insecure) alpha_i
    comes from the dealer seed."""
    if s.security != "malicious":
        raise MaliciousUnsupportedError("SPDZ2k runs on sessions with security='malicious'")
    if s.scheme.kind != "additive" or s.domain.is_field or s.domain.modulus != 1 << K:
        raise MaliciousUnsupportedError(f"SPDZ2k needs additive sharing over Z_2^{K}, got {s.scheme}")
    if getattr(dealer, "only", None) == s.pid:  # a shared-seed dealer copy (run_processes)
        alpha = dealer.alphas[s.pid]
        s._state.ext[_EXT] = _Ctx(alpha, Spdz2kDealerView(dealer, s.pid))
        return
    alpha = R.zeros(())
    alpha[0] = s.rng.uint64(())  # s = 64 bits
    s._state.ext[_EXT] = _Ctx(alpha, dealer.register(s.pid, alpha))


def _ctx(s: Session) -> _Ctx:
    ctx = s._state.ext.get(_EXT)
    if ctx is None:
        raise MaliciousUnsupportedError("SPDZ2k is not set up on this session (spdz2k.attach)")
    s.check_alive()
    if ctx.alpha is None and ctx.failed == _RELEASED:
        raise SessionAbortedError("SPDZ2k: the MAC key share was released with a client output; "
                                  "this session computes nothing more")
    if ctx.alpha is None:
        raise CheatingDetectedError("SPDZ2k: the MAC key was deleted after a failed check", check=ctx.failed)
    return ctx


def _alpha(ctx: _Ctx) -> np.ndarray:
    if ctx.alpha is None:
        raise CheatingDetectedError("SPDZ2k: the MAC key was deleted after a failed check", check=ctx.failed)
    return ctx.alpha


class AShare:
    """This party's shares ([x], [alpha x]) over Z_2^128 of an array x in Z_2^64; arrays of
    shape (*shape, 2) uint64 (ring128 layout). Linear operations are local."""

    __slots__ = ("x", "m", "_s")

    def __init__(self, x: np.ndarray, m: np.ndarray, s: Session):
        if x.shape != m.shape or x.dtype != _U64 or x.shape[-1:] != (2,):
            raise ShapeMismatch(f"AShare: value {x.shape} and MAC {m.shape} must be equal (*S, 2) uint64")
        self.x, self.m, self._s = x, m, s

    @property
    def shape(self) -> tuple[int, ...]:
        return self.x.shape[:-1]

    @property
    def size(self) -> int:
        return self.x.size // 2

    @property
    def ndim(self) -> int:
        return self.x.ndim - 1

    @property
    def T(self) -> AShare:  # noqa: N802 (numpy's name)
        """The transpose of a matrix (local)."""
        return AShare(self.x.swapaxes(0, 1), self.m.swapaxes(0, 1), self._s)

    def __repr__(self) -> str:
        return f"AShare(shape={self.shape}, party={self._s.pid})"

    def _public(self, c: int | np.ndarray) -> np.ndarray:
        """A public constant (Z_2^64, as the domain reads it) lifted into Z_2^128."""
        return R.from_u64(self._s.domain.from_int(c))

    def _add_public(self, c: np.ndarray) -> AShare:
        s = self._s
        alpha = _alpha(_ctx(s))
        x = R.add(self.x, c) if s.pid == 0 else np.broadcast_to(self.x, np.broadcast_shapes(self.x.shape, c.shape)).copy()
        return AShare(x, R.add(self.m, R.mul(c, alpha)), s)

    def __add__(self, y: AShare | int | np.ndarray) -> AShare:
        if isinstance(y, AShare):
            return AShare(R.add(self.x, y.x), R.add(self.m, y.m), self._s)
        return self._add_public(self._public(y))

    __radd__ = __add__

    def __neg__(self) -> AShare:
        return AShare(R.neg(self.x), R.neg(self.m), self._s)

    def __sub__(self, y: AShare | int | np.ndarray) -> AShare:
        if isinstance(y, AShare):
            return AShare(R.sub(self.x, y.x), R.sub(self.m, y.m), self._s)
        return self._add_public(R.neg(self._public(y)))

    def __rsub__(self, y: int | np.ndarray) -> AShare:
        return (-self) + y

    def __mul__(self, c: int | np.ndarray) -> AShare:
        if isinstance(c, AShare):
            raise TypeError("AShare * AShare needs communication: use `await spdz2k.mul(s, x, y)`")
        cu = self._s.domain.from_int(c)
        return AShare(R.mul_u64(self.x, cu), R.mul_u64(self.m, cu), self._s)

    __rmul__ = __mul__

    def sum(self, axis: int | tuple[int, ...] | None = None) -> AShare:
        return AShare(R.sum(self.x, axis), R.sum(self.m, axis), self._s)

    def __getitem__(self, idx: Any) -> AShare:
        idx = idx if isinstance(idx, tuple) else (idx,)
        return AShare(self.x[(*idx, Ellipsis)], self.m[(*idx, Ellipsis)], self._s)

    def reshape(self, *shape: Any) -> AShare:
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], tuple | list) else shape
        return AShare(self.x.reshape(*shape, 2), self.m.reshape(*shape, 2), self._s)


def _check(s: Session, *xs: AShare) -> None:
    for x in xs:
        if not isinstance(x, AShare):
            raise TypeError(f"expected an AShare, got {type(x).__name__}")
        if x._s.pid != s.pid:
            raise ShapeMismatch("AShare does not belong to this session")


# ----------------------------------------------------------------------- communication ---
async def _round(s: Session, op: str, out: dict[int, np.ndarray], expect: dict[int, tuple[tuple[int, ...], Any]]) -> dict[int, np.ndarray]:
    """One round of raw arrays (any dtype): send out[j], receive expect[j] = (shape, dtype)."""
    s.check_alive()
    tag = s.tag(op)
    try:
        for j, a in out.items():
            await s.channel.send(j, tag, np.ascontiguousarray(a))
        got = {j: await s.channel.recv_array(j, tag, dtype=np.dtype(dt), shape=sh) for j, (sh, dt) in expect.items()}
    except SmpcError as e:
        await s.abort(e)
        raise
    s.stats.rounds += 1
    return got


async def _open_partial(s: Session, op: str, xs: list[AShare]) -> list[np.ndarray]:
    """Partial opening: every party sends its value shares (16 bytes per element) to all; the
    values (in Z_2^128) and this party's MAC shares are recorded for the next check.
    1 round; (n - 1) * 16 * sum(size) bytes sent per party."""
    ctx = _ctx(s)
    flat = np.concatenate([x.x.reshape(-1, 2) for x in xs])
    macs = np.concatenate([x.m.reshape(-1, 2) for x in xs])
    tag = f"{s.prefix}{op}#{s._state.steps.get(s.prefix + op, 0)}"
    got = await _round(s, op, {j: flat for j in s.peers}, {j: (flat.shape, _U64) for j in s.peers})
    vals = flat
    for j in s.peers:
        vals = R.add(vals, got[j])
    ctx.opened.append((tag, vals, macs))
    out, k = [], 0
    for x in xs:
        out.append(vals[k : k + x.size].reshape(x.x.shape))
        k += x.size
    return out


# --------------------------------------------------------------------------- protocols ---
async def input(s: Session, x: np.ndarray | None, owner: int, shape: tuple[int, ...]) -> AShare:  # noqa: A001
    """The owner's array x (Z_2^64, uint64) as an AShare: [x] = [r] + delta with the owner's
    MACed mask r and delta = x - r mod 2^128 broadcast by the owner.

    Rounds: 1.  Bytes: the owner sends (n - 1) * 16 * N; the others nothing.
    Preprocessing: input_masks(shape, owner).
    Security: delta's consistency is checked at the next `check` (transcript digest).
    Raises: DomainError, ShapeMismatch, PartyIndexError.
    """
    _check_party(s, owner, "owner")
    shape = tuple(int(d) for d in shape)
    if s.pid == owner:
        if not isinstance(x, np.ndarray):
            raise DomainError(f"party {owner} owns this input but passed {type(x).__name__}")
        s.domain.check(x)
        if x.shape != shape:
            raise ShapeMismatch(f"input of shape {x.shape}, declared {shape}")
    elif x is not None:
        raise DomainError(f"party {s.pid} passed a value for party {owner}'s input")
    ctx = _ctx(s)
    r, mr, rc = await ctx.prep.input_masks(shape, owner)
    if x is not None:  # the owner (checked above)
        delta = R.sub(R.from_u64(x), rc)
        await _round(s, "sinput", {j: delta for j in s.peers}, {})
    else:
        delta = (await _round(s, "sinput", {}, {owner: ((*shape, 2), _U64)}))[owner]
    h = hashlib.blake2b(delta.tobytes(), digest_size=32, person=b"smpc-spdz2k-in")
    ctx.inputs.append((f"{s.prefix}{owner}", h.digest()))
    return AShare(R.add(r, delta) if s.pid == 0 else r, R.add(mr, R.mul(delta, _alpha(ctx))), s)


async def mul(s: Session, x: AShare, y: AShare, *, triple: tuple[np.ndarray, ...] | None = None) -> AShare:
    """Elementwise product by Beaver's trick with a MACed triple.

    Shapes: x, y: S (equal); returns S.   Rounds: 1.
    Bytes: (n - 1) * 2 * 16 * N sent per party (twice semi-honest Beaver's 8-byte elements).
    Preprocessing: triples(S), or `triple` if given (fetched ahead, e.g. by a benchmark).
    Security: the openings of d, e are checked at the next `check`.
    """
    _check(s, x, y)
    if x.shape != y.shape:
        raise ShapeMismatch(f"mul: shapes differ: {x.shape} and {y.shape}")
    ctx = _ctx(s)
    a, ma, b, mb, c, mc = triple if triple is not None else await ctx.prep.triples(x.shape)
    d, e = await _open_partial(s, "sopen", [x - AShare(a, ma, s), y - AShare(b, mb, s)])
    from protocols.arith import _r128_jit

    fd, fe, fa, fb, fc, fma, fmb, fmc = (np.ascontiguousarray(v).reshape(-1, 2) for v in (d, e, a, b, c, ma, mb, mc))
    z, mz = np.empty_like(fd), np.empty_like(fd)
    _r128_jit.beaver(fd, fe, fa, fb, fc, fma, fmb, fmc, _alpha(ctx), s.pid == 0, z, mz)
    return AShare(z.reshape(d.shape), mz.reshape(d.shape), s)


# ----------------------------------------------------------------------- the MAC check ---
def coefficients(seed: bytes, count: int, s_bits: int = S) -> np.ndarray:
    """chi_1..chi_count in Z_2^s (uint64 array) from a PRG (AES-CTR) keyed by the seed."""
    chi = CryptoRNG(hashlib.blake2b(seed, digest_size=32, person=b"smpc-spdz2k-chi").digest()).uint64(count)
    return chi if s_bits == 64 else chi & np.uint64((1 << s_bits) - 1)


def z_share(chi: np.ndarray, vals: np.ndarray, macs: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """z_i = sum_j chi_j m_ij - alpha_i * sum_j chi_j x~_j mod 2^128 (shape (2,))."""
    from protocols.arith import _r128_jit

    acc = np.zeros((2, 2), dtype=_U64)
    _r128_jit.dot2(np.ascontiguousarray(chi), np.ascontiguousarray(vals), np.ascontiguousarray(macs), acc)
    return R.sub(acc[1], R.mul(acc[0], alpha))


def _commit(*parts: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=COMMIT_BYTES, person=b"smpc-spdz2k-cm")
    for p in parts:
        h.update(len(p).to_bytes(4, "little") + p)
    return h.digest()


async def _commit_open(s: Session, op: str, value: bytes) -> tuple[dict[int, bytes], bool]:
    """Commit to `value` (one round, 32 bytes per peer), then open it with its nonce (one
    round, len(value) + 16 bytes per peer). Returns (every party's value, all openings
    matched their commitments)."""
    nonce = s.rng.bytes(NONCE_BYTES)
    mine = np.frombuffer(_commit(s.pid.to_bytes(2, "little"), value, nonce), dtype=np.uint8)
    got_c = await _round(s, op + "-c", {j: mine for j in s.peers}, {j: ((COMMIT_BYTES,), np.uint8) for j in s.peers})
    opening = np.frombuffer(value + nonce, dtype=np.uint8)
    got_o = await _round(s, op + "-o", {j: opening for j in s.peers}, {j: (opening.shape, np.uint8) for j in s.peers})
    vals, ok = {s.pid: value}, True
    for j in s.peers:
        raw = got_o[j].tobytes()
        v, nj = raw[: len(value)], raw[len(value) :]
        ok = ok and _commit(j.to_bytes(2, "little"), v, nj) == got_c[j].tobytes()
        vals[j] = v
    return vals, ok


async def check(s: Session, *, _fixed_chi: bool = False) -> None:
    """The batched MAC check of every value opened since the last check [CDESX18, Fig. 3].

        commit/open seeds (2 rounds);  chi = PRG(seeds);  z_i = sum chi_j m_ij - alpha_i y;
        commit/open z_i (2 rounds);  sum z_i = 0 mod 2^128?;  verdict (1 round)

    Rounds: 5 (0 if nothing was opened or input since the last check).
    Bytes per party: (n - 1) * (32 + 32 + 32 + 32 + 33) = 161 (n - 1).
    Raises: CheatingDetectedError on every honest party, naming the check.
    `_fixed_chi` is a deliberately broken variant (all chi_j = 1) for the tests only.
    """
    ctx = _ctx(s)
    if not ctx.opened and not ctx.inputs and ctx.failed is None:
        return
    opened, ctx.opened = sorted(ctx.opened, key=lambda o: o[0]), []
    failed = ctx.failed
    seeds, ok = await _commit_open(s, "sseed", s.rng.bytes(16))
    failed = failed or (None if ok else "commit")
    seed = b"".join(seeds[j] for j in range(s.n))
    M = sum(o[1].shape[0] for o in opened)
    chi = np.ones(M, dtype=_U64) if _fixed_chi else coefficients(seed, M)
    z, k = R.zeros(()), 0
    tr = hashlib.blake2b(digest_size=VERDICT_BYTES - 1, person=b"smpc-spdz2k-tr")
    tr.update(seed)
    for tag, vals, macs in opened:  # z is linear in the openings: summed per batch
        z = R.add(z, z_share(chi[k : k + vals.shape[0]], vals, macs, _alpha(ctx)))
        k += vals.shape[0]
        tr.update(tag.encode() + b"\0")
    for tag, d in sorted(ctx.inputs):
        tr.update(tag.encode() + b"\0" + d)
    ctx.inputs = []
    zs, ok = await _commit_open(s, "smac", z.tobytes())
    failed = failed or (None if ok else "commit")
    total = R.zeros(())
    for j in range(s.n):
        total = R.add(total, np.frombuffer(zs[j], dtype=_U64))
        tr.update(zs[j])
    if failed is None and total.any():
        failed = "mac"
    await _verdict(s, failed, tr.digest())


async def _verdict(s: Session, failed: str | None, digest: bytes) -> None:
    """One round: a flag byte and the transcript digest to every peer; any flag or a digest
    that differs from ours aborts (every honest party then raises)."""
    mine = np.zeros(VERDICT_BYTES, dtype=np.uint8)
    mine[0] = 0 if failed is None else 1
    mine[1:] = np.frombuffer(digest, dtype=np.uint8)
    got = await _round(s, "sverdict", {j: mine for j in s.peers}, {j: ((VERDICT_BYTES,), np.uint8) for j in s.peers})
    if any(not np.array_equal(v[1:], mine[1:]) for v in got.values()):
        await _fail(s, "transcript", f"party {s.pid}: parties saw different openings or inputs")
    if failed is not None:
        await _fail(s, failed, f"party {s.pid}: the {failed!r} check failed")
    if any(v[0] != 0 for v in got.values()):
        await _fail(s, "reported", f"party {s.pid}: another party reported a failed check")


async def _fail(s: Session, check: str, message: str) -> None:
    """Terminal: delete alpha_i and the pending openings, drop buffered preprocessing, abort."""
    err = CheatingDetectedError(f"cheating detected ({check} check): {message}", check=check)
    ctx = s._state.ext[_EXT]
    ctx.failed = check
    ctx.on_abort()
    queues = getattr(s.prep, "_queues", None)
    if isinstance(queues, dict):
        queues.clear()
    await s.abort(err)
    raise err


async def open(s: Session, *xs: AShare) -> list[np.ndarray]:  # noqa: A001
    """Check, then reveal the values of xs (Z_2^64, uint64) to every party.

        check;  open [x + 2^64 r] for MACed random r (1 round);  check;  x = low 64 bits

    Rounds: 5 (only if anything is pending) + 1 + 5.
    Bytes: (n - 1) * (16 * N + 161) + the first check's.   Preprocessing: randoms(N).
    Raises: CheatingDetectedError on every honest party; nothing is returned then.
    """
    _check(s, *xs)
    if not xs:
        return []
    await check(s)
    ctx = _ctx(s)
    N = sum(x.size for x in xs)
    r, mr = await ctx.prep.randoms((N,))
    flat = AShare(np.concatenate([x.x.reshape(-1, 2) for x in xs]), np.concatenate([x.m.reshape(-1, 2) for x in xs]), s)
    masked = AShare(R.add(flat.x, R.shl64(r)), R.add(flat.m, R.shl64(mr)), s)
    (vals,) = await _open_partial(s, "sout", [masked])
    await check(s)
    low = R.lo(vals)
    out, k = [], 0
    for x in xs:
        out.append(low[k : k + x.size].reshape(x.shape))
        k += x.size
    return out


async def reveal_to(s: Session, x: AShare, party: int) -> np.ndarray | None:
    """Check, then reveal x (Z_2^64, uint64) to `party` only (None elsewhere): with the
    party's MACed mask r (known to it in full), [x - r] is opened to all (uniform in
    Z_2^128: it tells nothing), checked, and the party adds r.

        check;  open [x - r] (1 round);  check;  party: x = (x - r) + r mod 2^64

    Rounds: 5 (only if anything is pending) + 1 + 5.
    Bytes: (n - 1) * (16 * N + 161) + the first check's.   Preprocessing: input_masks(N, party).
    Raises: CheatingDetectedError on every honest party; nothing is returned then.
    """
    _check(s, x)
    _check_party(s, party, "party")
    await check(s)
    ctx = _ctx(s)
    r, mr, rc = await ctx.prep.input_masks(x.shape, party)
    (vals,) = await _open_partial(s, "sout", [x - AShare(r, mr, s)])
    await check(s)
    if s.pid != party:
        return None
    return R.lo(R.add(vals, rc))


# ------------------------------------------------------------------- client outputs ---
async def output_to_client(s: Session, *xs: AShare) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """The SPDZ-style output to an external receiver (a client that holds no share): this
    party's part of x + 2^k r with its MAC, and its MAC key share alpha_i, for the receiver to
    check and open with `open_client_output` [DPSZ12, section 4 (the output phase: the MAC
    key is opened once nothing more is computed); CDESX18, section 3 (the check mod 2^(k+s)
    and the masking of the upper s bits)].

        check;  r = randoms(N);  x' = x + 2^k r, m' = m + 2^k m_r (local);  check;
        release alpha_i (deleted here: the session can compute nothing more)

    Returns ([(x'_i, m'_i) per x, each of shape (*x.shape, 2)], alpha_i of shape (2,)).
    Rounds: the pending check's 5 (if anything is pending) + the source's for N randoms.
    Bytes: the checks' and the source's only; what the receiver gets is 32 * N + 16 per
    party (sealed by the caller).
    Security: alpha = sum alpha_i is this session's key, drawn for it alone (`attach`), and
    nothing is opened, checked or MACed under it after this call (every output of the job
    goes through one call; `_ctx` refuses any later use). A party's alpha_i is no use to the
    receiver before every honest party has made this call, that is before each has finished
    every check. The mask 2^k r (r's low k bits uniform: an honest party's share) hides the
    upper s bits of x~ = sum x_i mod 2^(k+s), which can carry intermediate values (the
    reason `open` masks them too): the receiver learns x mod 2^k, and m' = alpha x' tells it
    nothing beyond x' and alpha. A cheater's shifts of its x'_i, m'_i, alpha_i are caught by
    the receiver's check (`open_client_output`).
    Raises: CheatingDetectedError (the pending check), SessionAbortedError (used again).

    [DPSZ12] I. Damgard, V. Pastro, N. Smart, S. Zakarias, "Multiparty Computation from
    Somewhat Homomorphic Encryption", CRYPTO 2012.
    """
    _check(s, *xs)
    await check(s)
    ctx = _ctx(s)
    N = sum(x.size for x in xs)
    r, mr = await ctx.prep.randoms((N,))
    await check(s)  # nothing is pending unless the source opened MACed values for r
    ctx = _ctx(s)
    out, k = [], 0
    for x in xs:
        rk, mk = r[k : k + x.size].reshape(x.x.shape), mr[k : k + x.size].reshape(x.x.shape)
        out.append((R.add(x.x, R.shl64(rk)), R.add(x.m, R.shl64(mk))))
        k += x.size
    key = _alpha(ctx)
    alpha = key.copy()
    key.fill(0)  # in place: the preprocessing source holds the same array
    ctx.alpha, ctx.opened, ctx.inputs, ctx.failed = None, [], [], _RELEASED
    return out, alpha


def open_client_output(xs: list[np.ndarray], ms: list[np.ndarray], alphas: list[np.ndarray]) -> np.ndarray | None:
    """The receiver's side of `output_to_client` (no session, no communication): with every
    party's x'_i, m'_i (arrays (*S, 2) uint64) and alpha_i ((2,) uint64, in Z_2^s), check
    sum m'_i == (sum alpha_i) * (sum x'_i) mod 2^(k+s) element by element; return
    x = sum x'_i mod 2^k (uint64, shape S), or None if any element fails or an alpha_i is
    not in Z_2^s.

    Soundness [CDESX18, section 3 and Theorem 1]: a cheater that shifts its shares by
    (d, e, a) (value, MAC, key) passes only if alpha_h d + a (x' + d) + A d = e mod 2^(k+s),
    alpha_h being an honest party's key share (uniform in Z_2^s, unknown to it). If d != 0
    mod 2^k (a changed output) with 2-adic valuation v < k, alpha_h d is uniform over 2^s
    values mod 2^(s+v), so one element passes with probability at most 2^-s; the batched
    check's random linear combination (`check`) adds the log2(s + 1) term of Theorem 1,
    which this element-wise check does not need.
    """
    if not xs or len(xs) != len(ms) or len(xs) != len(alphas):
        return None
    shape = xs[0].shape
    if any(a.shape != (2,) or a[1] != 0 for a in alphas) or any(v.shape != shape for v in (*xs, *ms)):
        return None
    x, m, alpha = xs[0], ms[0], alphas[0]
    for i in range(1, len(xs)):
        x, m, alpha = R.add(x, xs[i]), R.add(m, ms[i]), R.add(alpha, alphas[i])
    if not np.array_equal(R.mul(x, alpha), m):
        return None
    return R.lo(x)
