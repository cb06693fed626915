"""Shamir sharing with malicious security with abort, honest majority [CGHIKLN18].

K. Chida, D. Genkin, K. Hamada, D. Ikarashi, R. Kikuchi, Y. Lindell, A. Nof, "Fast
Large-Scale Honest-Majority MPC for Malicious Adversaries", CRYPTO 2018, section 3 (the
protocol for large fields). Multiplication: the semi-honest degree reduction of I. Damgard,
J. B. Nielsen, "Scalable and Unconditionally Secure Multiparty Computation", CRYPTO 2007
(DN07), which the paper shows is secure up to additive attacks.

The compiler. A random shared [r] (the MAC key; unknown to everybody) is drawn once per
epoch. Every wire value x is carried as the pair ([x], [r*x]) (an `MShare`):

- input: x = rho + delta with [rho] a random sharing opened to the owner only, delta
  = x - rho sent by the owner to all (its consistency checked at the next verification by
  a digest of every delta each party received); [r*x] = [r*rho] + delta*[r], where [r*rho]
  is one DN07 product computed while rho travels. A malicious owner therefore always shares
  a value on a degree-t polynomial. `input` range-checks under MPC (issue 16): the owner
  inputs the bits of its value, b(b - 1) = 0 is checked by a random linear combination
  whose value is opened with T at the next verification, and truncations and comparisons
  verify first (a value outside 2^(l-1) would not be hidden by their masks);
  `input_unchecked` is the bare compiler input for callers that check ranges themselves.
- linear operations act on both components; adding a public c adds c*[r] to [r*x].
- mul: ([x*y], [(r*x)*y]) by two DN07 products in one degree reduction (2 rounds). matmul
  likewise with matrix products (the communication is that of the k x m output only).
- verification, before any value is revealed: a public random coin (a random sharing,
  opened) seeds a PRG that yields one coefficient alpha_k per element of every input and
  product since the last verification (the pairs (z_k, rz_k)); r is opened in the same
  round. Every party computes [T] = sum_k alpha_k [rz_k] - r * sum_k alpha_k [z_k] and
  T is opened and must be 0. The coin and r are opened only after every additive error is
  fixed, and every opening uses all n shares with the Shamir consistency check (n = 2t + 1
  shares of degree t: any change by up to t parties is seen by every party that receives
  it). If the adversary added errors, T != 0 except with probability at most 2/|F| (1/|F|
  over alpha that a non-zero mismatch vanishes, 1/|F| over r that an error in a z cancels
  its r*z counterpart), about 2^-126 over GF(2^127 - 1). The paper draws the alpha_k as
  shared randoms combined by one extra product; public coins drawn after the errors are
  fixed are sound here because nothing the adversary sends after the coin is revealed can
  change T (T is opened with the consistency check), and they save that product.
- abort: a party whose check fails tells every other in the next message (a flag) and a
  final verdict round (flags and the input digest, 33 bytes) ends the verification, so every
  honest party raises `CheatingDetectedError` (code `security.cheating_detected`, naming the
  check), the session aborts (terminal) and its buffered preprocessing is dropped. Values are
  opened only after the verdict, and are returned only after a second verdict on the
  opening's own consistency check.
- the offline share of the check (`compress_pending`): the preparations MAC their masks
  under the live key; at their end the pairs recorded so far are folded into one by
  coefficients from a coin opened then (the errors are fixed and r is still secret), so
  the online verification sums only what the online phase computed.
- the value check before a masked opening (`check_values`, review5): truncation and
  comparison open c = v + 2^(l-1) + r with a statistical mask, which hides v only while v is
  in range; an additive error in a product, multiplied by a secret in a later product,
  puts that secret into c's top bits before the verification catches the error. So every
  masked opening that follows a product first checks the products' values (5 rounds; r
  stays secret: the value part of the check above, r * W formed by one more product).
- after a verification r is public: the next operation draws a fresh r (a new epoch), and an
  MShare of an older epoch must be `refresh`ed (one DN07 product, done by `mul` / `matmul`
  for their left operand) before it is combined with newer ones.

Security: malicious with abort (not fairness), information-theoretic, up to t < n/2 corrupt,
n = 2t + 1, over a field of at least MIN_FIELD_BITS bits; preprocessing random and double
sharings from DN07 (dealer-free) or the trusted dealer (tests). Elements are e =
domain.elem_bytes bytes (16 for GF(2^127 - 1)).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from network.errors import SmpcError
from protocols.arith.domain import Domain, PrimeField
from protocols.arith.mersenne127 import Mersenne127
from protocols.core import _check_party
from protocols.errors import (
    CheatingDetectedError,
    DomainError,
    InputRangeError,
    InputRangeRefusedError,
    MaliciousUnsupportedError,
    ParameterError,
    ShapeMismatch,
)
from protocols.prg import CryptoRNG, derive_key
from protocols.session import Session, Share
from protocols.sharing.schemes import ShamirShares
from protocols.sharing.shamir import lagrange_coefficients
from protocols.truncation import KAPPA, value_bits

#: smallest field (bits of p) the compiler accepts: one check is sound to about 2/p
MIN_FIELD_BITS = 120
#: bytes of one verdict message: a flag byte and the BLAKE2b-256 digest of received inputs
VERDICT_BYTES = 33

_EXT = "chida18"


# ----------------------------------------------------------------------------- state ---
@dataclass(eq=False)
class _Key:
    """This party's share of one epoch's MAC key r (shape ())."""

    r: np.ndarray
    epoch: int


@dataclass(eq=False)
class _Ctx:
    key: _Key | None = None
    epoch: int = 0
    #: (tag of the operation, z, r*z) of every input and product since the last check; the
    #: check sorts them by tag, so concurrent branches may finish in any order
    pending: list[tuple[str, np.ndarray, np.ndarray]] = field(default_factory=list)
    #: (tag, BLAKE2b of delta) of every input delta received since the last verification
    inputs: list[tuple[str, bytes]] = field(default_factory=list)
    #: (tag, owner, shares of v = sum_k gamma_k b_k (b_k - 1) over the bits b of the owner's
    #: range-checked input) since the last verification: checked 0 at it (check "input.range")
    ranges: list[tuple[str, int, np.ndarray]] = field(default_factory=list)
    failed: str | None = None  # a check that failed locally, reported at the next verdict
    #: pairs whose VALUE came out of a reduction (products: an additive error can sit in it)
    #: since the last verification or `check_values`; a masked opening checks them first
    values: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    verifying: asyncio.Lock = field(default_factory=asyncio.Lock)  # held by verify (_record)


_RACE = ("a product in one concurrent branch raced a verification (open, reveal_to, verify) "
         "in another, which opens its MAC key; join the branches before verifying")


def _record(s: Session, key: _Key, tag: str, z: np.ndarray, rz: np.ndarray, *, value: bool = True) -> None:
    """Record (z, r*z) for the next verification. A pair under a key that a verification
    opened (or is opening) cannot be checked soundly and would fail the next check with no
    cheater: refused with a typed error that blames nobody (security.unsupported).
    `value`: z itself came out of a reduction (a product: it may carry an additive error,
    which `check_values` must rule out before a masked opening); False where only r*z did
    (an input's, a random's or a re-keyed value's MAC)."""
    ctx = _state(s)
    if key is not ctx.key or ctx.verifying.locked():
        raise MaliciousUnsupportedError(_RACE)
    ctx.pending.append((tag, z, rz))
    if value:
        ctx.values += 1


def _sch(s: Session) -> ShamirShares:
    sch = s.scheme
    if not isinstance(sch, ShamirShares):
        raise MaliciousUnsupportedError("the Chida et al. compiler needs Shamir sharing")
    return sch


def _field(s: Session) -> PrimeField:
    D = s.domain
    if not isinstance(D, PrimeField):
        raise MaliciousUnsupportedError(f"the Chida et al. compiler needs a prime field, got {D}")
    return D


def _state(s: Session) -> _Ctx:
    ctx = s._state.ext.get(_EXT)
    if ctx is None:
        sch = _sch(s)
        if s.n != 2 * sch.t + 1:
            raise MaliciousUnsupportedError(f"malicious Shamir needs n = 2t + 1, got n={s.n}, t={sch.t}")
        if s.domain.modulus.bit_length() < MIN_FIELD_BITS:
            raise MaliciousUnsupportedError(
                f"malicious Shamir needs a field of at least {MIN_FIELD_BITS} bits, got {s.domain}"
            )
        ctx = s._state.ext[_EXT] = _Ctx()
    return ctx


async def _key(s: Session) -> _Key:
    """The current epoch's key, drawn (one random sharing) on first use after a verify."""
    ctx = _state(s)
    async with ctx.lock:
        if ctx.key is None:
            r = await s.prep.randoms(())
            ctx.key = _Key(np.asarray(r), ctx.epoch)
        return ctx.key


def _rb(key: _Key, shape: tuple[int, ...]) -> np.ndarray:
    """The key share broadcast to `shape` (contiguous: field kernels want it so)."""
    return np.ascontiguousarray(np.broadcast_to(key.r, shape))


# ----------------------------------------------------------------------------- MShare ---
class MShare:
    """A value x as this party's shares of ([x], [r*x]) under one epoch's key. Linear
    operations are local; products use `mul` / `matmul`; values leave only through `open` /
    `reveal_to`, which verify first."""

    __slots__ = ("x", "rx", "key")

    def __init__(self, x: Share, rx: Share, key: _Key):
        if x.shape != rx.shape:
            raise ShapeMismatch(f"MShare components differ in shape: {x.shape} and {rx.shape}")
        self.x, self.rx, self.key = x, rx, key

    @property
    def shape(self) -> tuple[int, ...]:
        return self.x.shape

    @property
    def size(self) -> int:
        return self.x.size

    @property
    def ndim(self) -> int:
        return self.x.ndim

    def __repr__(self) -> str:
        return f"MShare(shape={self.shape}, party={self.x._s.pid}, epoch={self.key.epoch})"

    def _same(self, y: MShare) -> None:
        if y.key is not self.key:
            raise MaliciousUnsupportedError(
                "MShares of different MAC-key epochs (one was made before a verification): "
                "`await malicious.refresh(s, x)` the older one first"
            )

    def _public_r(self, c: int | np.ndarray) -> np.ndarray:
        """c * r as shares (c public), broadcast to the result's shape."""
        s, D = self.x._s, self.x._s.domain
        cd = s.public(c) if not (isinstance(c, np.ndarray) and c.dtype == D.dtype) else c
        shape = np.broadcast_shapes(self.shape, cd.shape)
        if cd.size == 1:  # one public constant: r * c once, broadcast (not one product per element)
            rc = D.mul(np.asarray(self.key.r).reshape(1), np.ascontiguousarray(cd).reshape(1))
            return np.ascontiguousarray(np.broadcast_to(rc.reshape(()), shape))
        return D.mul(_rb(self.key, shape), np.ascontiguousarray(np.broadcast_to(cd, shape)))

    def __add__(self, y: MShare | int | np.ndarray) -> MShare:
        if isinstance(y, MShare):
            self._same(y)
            return MShare(self.x + y.x, self.rx + y.rx, self.key)
        return MShare(self.x + y, self.rx + self._public_r(y), self.key)

    __radd__ = __add__

    def __sub__(self, y: MShare | int | np.ndarray) -> MShare:
        if isinstance(y, MShare):
            self._same(y)
            return MShare(self.x - y.x, self.rx - y.rx, self.key)
        return MShare(self.x - y, self.rx - self._public_r(y), self.key)

    def __rsub__(self, y: int | np.ndarray) -> MShare:
        return (-self) + y

    def __neg__(self) -> MShare:
        return MShare(-self.x, -self.rx, self.key)

    def __mul__(self, c: int | np.ndarray) -> MShare:
        if isinstance(c, MShare | Share):
            raise TypeError("MShare * MShare needs communication: use `await malicious.mul(s, x, y)`")
        s = self.x._s
        if isinstance(c, np.ndarray) and c.dtype == s.domain.dtype:  # public field elements
            D = s.domain
            return MShare(Share(D.mul(self.x.data, c), s), Share(D.mul(self.rx.data, c), s), self.key)
        return MShare(self.x * c, self.rx * c, self.key)

    __rmul__ = __mul__

    def __matmul__(self, c: np.ndarray) -> MShare:
        if isinstance(c, MShare | Share):
            raise TypeError("MShare @ MShare needs communication: use `await malicious.matmul(s, x, y)`")
        return MShare(self.x @ c, self.rx @ c, self.key)

    def __rmatmul__(self, c: np.ndarray) -> MShare:
        return MShare(c @ self.x, c @ self.rx, self.key)

    def sum(self, axis: int | tuple[int, ...] | None = None) -> MShare:
        return MShare(self.x.sum(axis), self.rx.sum(axis), self.key)

    def __getitem__(self, idx: Any) -> MShare:
        return MShare(self.x[idx], self.rx[idx], self.key)

    def reshape(self, *shape: Any) -> MShare:
        return MShare(self.x.reshape(*shape), self.rx.reshape(*shape), self.key)

    @property
    def T(self) -> MShare:  # noqa: N802
        return MShare(self.x.T, self.rx.T, self.key)


def _check(s: Session, *xs: MShare) -> None:
    for x in xs:
        if not isinstance(x, MShare):
            raise TypeError(f"expected an MShare, got {type(x).__name__}")
        if x.x._s.pid != s.pid or x.x._s.domain != s.domain:
            raise ShapeMismatch("MShare does not belong to this session")


# ------------------------------------------------------------------- DN07 reduction ---
async def _reduce(s: Session, z2t: np.ndarray, rt: np.ndarray, r2t: np.ndarray) -> tuple[np.ndarray, str]:
    """Degree-2t shares z -> degree-t shares of z [DN07, section 4]: d = z - r_2t goes to
    kings (party j is the king of the j-th of n chunks), who interpolate it from 2t + 1
    shares and send it back; [z]_t = [r]_t + d. 2 rounds; party i sends M + (n - 2) * |c_i|
    elements for M elements in all (c_i its chunk; 4M/3 for n = 3 when 3 | M). An active
    adversary can only add errors to z (an additive attack), which the check catches.
    Returns (the degree-t shares, this reduction's tag: a deterministic name for it)."""
    F, n, me, t = _field(s), s.n, s.pid, _sch(s).t
    shape = z2t.shape
    d = F.sub(z2t.reshape(-1), r2t.reshape(-1))
    bounds = np.linspace(0, d.size, n + 1).astype(np.int64)
    chunk = [(int(bounds[j]), int(bounds[j + 1])) for j in range(n)]
    lo, hi = chunk[me]
    tag = s.tag("mking")
    got = await s.exchange(
        tag,
        {j: d[chunk[j][0] : chunk[j][1]] for j in s.peers},
        {j: (hi - lo,) for j in s.peers},
    )
    got[me] = d[lo:hi]
    lag = lagrange_coefficients(F.modulus, tuple(_sch(s).xs[: 2 * t + 1]), 0)
    mine = F.lincomb(lag, [got[i] for i in range(2 * t + 1)])
    back = await s.exchange(
        s.tag("mking-open"),
        {j: mine for j in s.peers},
        {j: (chunk[j][1] - chunk[j][0],) for j in s.peers},
    )
    back[me] = mine
    opened = np.concatenate([back[j] for j in range(n)])
    return F.add(rt.reshape(-1), opened).reshape(shape), tag


def _stack(F: Domain, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty((2, *a.shape), dtype=F.dtype)
    out[0], out[1] = a, b
    return out


def _pair_prod(F: Domain, x: np.ndarray, rx: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(x*y, rx*y) stacked (2, *S) for shares of one shape S, written in place (no
    temporaries): the degree-2t operand of a checked product's reduction."""
    out = np.empty((2, *x.shape), dtype=F.dtype)
    F.mul(x, y, out=out[0])
    F.mul(rx, y, out=out[1])
    return out


# ----------------------------------------------------------------------- protocols ---
class InputRangeCheatingError(CheatingDetectedError):
    """An owner's input failed its range check under MPC (check "input.range"): the owner
    deviated from the protocol (an honest owner's out-of-range value is refused instead:
    InputRangeRefusedError at every party, nothing of it sent). `owners` names the parties
    whose input failed."""

    def __init__(self, message: str, *, owners: tuple[int, ...] = ()) -> None:
        super().__init__(message, check="input.range")
        self.owners = owners


def range_bits(D: Domain, terms: int = 1, kappa: int = KAPPA) -> int:
    """The default signed width w of a range-checked input (-2^(w-1) <= x < 2^(w-1)): the
    largest w for which a sum of `terms` products of two such values stays below the
    truncation / comparison bound 2^(l-1), l = truncation.value_bits(D) (64 on GF(2^127 - 1)):
    terms * 2^(2w - 2) < 2^(l-1), i.e. w = (l - ceil(log2 terms)) // 2 (32 for terms = 1:
    |x| <= 2^31, a fixed-point value below 2^15 with f = 16; 26 for a sum of 2000 products).
    A masked opening c = v + 2^(l-1) + r (r < 2^(l+kappa)) hides v only while |v| < 2^(l-1);
    an unbounded input (e.g. 2^104) rotates an honest factor into c's top bits."""
    if int(terms) < 1:
        raise ParameterError(f"range_bits: terms must be >= 1, got {terms}")
    return (value_bits(D, kappa) - (int(terms) - 1).bit_length()) // 2


def _width(D: Domain, bits: int | None, signed: bool) -> int:
    w = range_bits(D) if bits is None else int(bits)
    top = value_bits(D) if signed else value_bits(D) - 1
    if not 1 <= w <= top:
        raise ParameterError(f"input: {'signed' if signed else 'unsigned'} width must be in 1..{top} "
                             f"on {D}, got {w}")
    return w


def decompose(D: Domain, x: np.ndarray, bits: int, signed: bool = True) -> np.ndarray:
    """The owner's bits of x (pure): (bits, *x.shape) field elements b_i in {0, 1} with
    x = sum_i 2^i b_i - (2^(bits-1) if signed else 0).
    Raises InputRangeError if some x does not fit (signed: -2^(bits-1) <= x < 2^(bits-1);
    unsigned: 0 <= x < 2^bits)."""
    lo = -(1 << (bits - 1)) if signed else 0
    v = D.to_signed(x).reshape(-1)
    if v.size and (min(v) < lo or max(v) >= lo + (1 << bits)):
        raise InputRangeError(f"an input value does not fit its declared range [{lo}, {lo + (1 << bits)}) "
                              f"({bits} {'signed' if signed else 'unsigned'} bits)")
    u = np.array([int(a) - lo for a in v], dtype=np.uint64).reshape(x.shape)
    sh = np.arange(bits, dtype=np.uint64).reshape((bits,) + (1,) * x.ndim)
    return D.from_int(((u[None, ...] >> sh) & np.uint64(1)).astype(np.int64))


def _owner_bits(s: Session, x: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """The bits this party inputs for its own x (tests replace it to model a cheating owner
    that skips the local range check and inputs non-bits)."""
    return decompose(s.domain, x, bits, signed)


#: an owner's input status as one party received it (`input_announced`): 0 its input
#: follows, 1 it refused (an honest owner's value outside its declared range), 2 malformed
#: (not 0 or 1: a deviation, reported at the status echo so that every party hears of it)
STATUS_OK, STATUS_REFUSED, STATUS_MALFORMED = 0, 1, 2


def status_verdict(owners: list[int], views: dict[int, np.ndarray]) -> tuple[bool, tuple[int, ...]]:
    """The verdict on the echoed input statuses (pure): `views[j]` is the status vector
    (one entry per owner, in `owners` order) party j says it received, this party's own
    included. Returns (deviation, refusing owners): a deviation if any two vectors differ or
    any entry is not 0 / 1 (an owner equivocated its status or sent a malformed one, or a
    party misreported its own view); else the owners every party saw refuse."""
    rows = [[int(v) for v in np.asarray(views[j]).reshape(-1)] for j in sorted(views)]
    if any(len(r) != len(owners) for r in rows) or any(r != rows[0] for r in rows):
        return True, ()
    if any(v not in (STATUS_OK, STATUS_REFUSED) for v in rows[0]):
        return True, ()
    return False, tuple(o for o, v in zip(owners, rows[0], strict=True) if v == STATUS_REFUSED)


async def _status_outcome(s: Session, owners: list[int], views: dict[int, np.ndarray], bits: int | None,
                          signed: bool) -> None:
    """Act on `status_verdict`: a deviation is terminal (CheatingDetectedError, check
    "input.status", via `_fail`); refusals raise InputRangeRefusedError naming the owners."""
    deviation, refused = status_verdict(owners, views)
    if deviation:
        await _fail(s, "input.status", f"party {s.pid}: the parties received different or malformed "
                    f"input statuses from the owner(s) {owners} (an owner equivocated, or a party "
                    "misreported what it received)")
    raise_refusals(owners, [o not in refused for o in owners], bits, signed)


async def agree_statuses(s: Session, owners: list[int], statuses: list[int], *, bits: int | None,
                         signed: bool = True) -> None:
    """The status echo (issue 16): every party sends every other the statuses it received
    (`input_announced`, one per owner in `owners` order; its own as owner), so that an owner
    that tells one party "refused" and another "accepted" is caught by every honest party
    alike: the two honest views differ and each honest party sees the other's. Then, as
    `status_verdict`: CheatingDetectedError (check "input.status", terminal) on any
    difference or malformed status, InputRangeRefusedError naming the refusing owners if
    every view agrees on a refusal, nothing otherwise.
    Rounds: 1.   Bytes: (n - 1)*len(owners)*e per party.
    (A party that misreports its own view in this round can make one honest party abort
    while the other proceeds to a vanished peer: abort without unanimity, as every
    verdict round here; it learns nothing and nothing is released.)"""
    F = s.domain
    mine = F.from_int(np.asarray(statuses, dtype=np.int64).reshape(len(owners)))
    got = await s.exchange(s.tag("mstatus"), {j: mine for j in s.peers},
                           {j: (len(owners),) for j in s.peers})
    got[s.pid] = mine
    await _status_outcome(s, owners, {j: F.to_int(v) for j, v in got.items()}, bits, signed)


def raise_refusals(owners: list[int], oks: list[bool], bits: int | None, signed: bool = True) -> None:
    """InputRangeRefusedError naming every owner in `owners` whose status (`oks`, agreed by
    `agree_statuses`) was a refusal; nothing if none refused."""
    bad = tuple(o for o, ok in zip(owners, oks, strict=True) if not ok)
    if bad:
        lo = -(1 << (bits - 1)) if signed and bits else 0
        rng = "" if bits is None else (f" [{lo}, {lo + (1 << bits)}) ({bits} "
                                       f"{'signed' if signed else 'unsigned'} bits)")
        raise InputRangeRefusedError(f"party(ies) {list(bad)} refused their input: a value is outside its "
                                     f"declared range{rng}; nothing was opened", owners=bad)


async def input(s: Session, x: np.ndarray | None, owner: int, shape: tuple[int, ...], *,  # noqa: A001
                bits: int | None = None, signed: bool = True) -> MShare:
    """The owner's array x as an MShare, range-checked under MPC (`input_many` for one owner):
    -2^(bits-1) <= x < 2^(bits-1) (signed) or 0 <= x < 2^bits, bits = `range_bits(domain)`
    (32 on GF(2^127 - 1)) unless given. An owner that deviates is caught at the next
    verification (before any masked opening: `trunc` and the comparisons verify first) with
    InputRangeCheatingError (security.cheating_detected, check "input.range") naming it, on
    every honest party.
    Rounds: 4 (input, as `input_unchecked` on the bits) + 1 (coin) + 2 (one reduction); the
    zero check rides in the next verification's rounds.   Bytes: `input_unchecked` on
    bits * prod(shape) elements, (n - 1)*e (coin), a 2-element reduction, plus (n - 1)*n*e
    in that verification.
    Raises: InputRangeRefusedError (code input.range, at every party, naming the owner: an
    honest owner whose x does not fit refuses it in the input protocol), ParameterError (bits),
    DomainError, ShapeMismatch, PartyIndexError."""
    got = await input_many(s, x if s.pid == owner else None, {owner: shape}, bits=bits, signed=signed)
    return got[owner]


async def input_many(s: Session, x: np.ndarray | None, shapes: dict[int, tuple[int, ...]], *,
                     bits: int | None = None, signed: bool = True) -> dict[int, MShare]:
    """Every owner in `shapes` inputs an array of that shape (x: this party's own, or None),
    range-checked under MPC as `input` describes; returns {owner: MShare}, every MShare under
    the current key.

        owner: b = bits of x + 2^(bits-1) (bits, *shape);   [b] = input_unchecked(b)
        gamma = PRG(open(coin))    (a random sharing, opened after every [b] is fixed)
        v_o = reduce(sum_k gamma_k [b_k] ([b_k] - 1)) with its MAC (r*b_k)(b_k - 1):
              one DN07 reduction of 2 elements per owner, recorded like a product
        x = sum_i 2^i [b_i] - 2^(bits-1)           (local)
        next verification: every v_o opened with T (after the MAC check: a wrong v fails
        "mac" first, so an honest owner is never blamed); v_o != 0 -> "input.range" naming o

    An honest owner whose own x does not fit sends a refusal in its delta message instead
    (`input_announced`): once every owner's input round is done, every party echoes the
    statuses it received in its coin message (`agree_statuses`, no extra round), so an
    owner that tells one party "refused" and another "accepted" is caught alike at every
    honest party (CheatingDetectedError, check "input.status"); if every view agrees, every
    party raises InputRangeRefusedError naming the refusing owners, with nothing opened.

    The bit check is a random linear combination with public coefficients drawn after the
    values are fixed [Corrigan-Gibbs and Boneh, "Prio", NSDI 2017, sec. 4], computed on
    degree-2t products and reduced once, its MAC [r*v] formed from the bits' MACs so that an
    additive error in the reduction is caught by the check of [CGHIKLN18, sec. 3] (without
    the MAC a cheater that knows its own v could cancel it). A non-bit gives v_o = 0 with
    probability 1/p; v_o reveals only a combination of the cheater's own bits (every honest
    owner's v_o is 0). The inputs of several owners run concurrently (children "in<owner>").
    Rounds: 4 (input) + 1 (coin and status echo) + 2 (reduction).
    Bytes: `input_announced` on bits * prod(shape) elements per owner, (n - 1)*(1 +
    len(owners))*e (coin and status echo),
    a `_reduce` of 2 * len(owners) elements, (n - 1)*n*e in the next verification.
    Preprocessing: input_unchecked's, randoms((1,)), double_randoms((2, len(owners))).
    Raises: as `input`."""
    F = s.domain
    ctx = _state(s)  # refuses an unsupported scheme or field first
    w = _width(F, bits, signed)
    owners = sorted(int(o) for o in shapes)
    for o in owners:
        _check_party(s, o, "owner")
    mine: np.ndarray | None = None
    refused = False
    if s.pid in shapes:
        if x is None or not isinstance(x, np.ndarray):
            raise DomainError(f"party {s.pid} owns this input but passed {type(x).__name__}")
        F.check(x)
        if x.shape != tuple(int(d) for d in shapes[s.pid]):
            raise ShapeMismatch(f"input of shape {x.shape}, declared {tuple(shapes[s.pid])}")
        try:
            mine = _owner_bits(s, x, w, signed)
        except InputRangeError:
            refused = True  # told to every party in the input protocol (no value is sent)
    elif x is not None:
        raise DomainError(f"party {s.pid} passed a value for another party's input")

    async def one(o: int) -> tuple[MShare, int]:
        shp = (w, *(int(d) for d in shapes[o]))
        c = s if len(owners) == 1 else s.child(f"in{o}")
        return await input_announced(c, mine if o == s.pid else None, o, shp,
                                     refused=refused and o == s.pid)

    got = list(await asyncio.gather(*(one(o) for o in owners)))
    bs = [b for b, _ in got]
    # the coin: a random sharing opened (consistency-checked) after every bit is fixed; the
    # status echo (`agree_statuses`) rides in the same messages (no extra round)
    k_own = len(owners)
    msg = np.concatenate([(await s.prep.randoms((1,))).reshape(1),
                          F.from_int(np.array([st for _, st in got], dtype=np.int64))])
    recv = await s.exchange(s.tag("mrange-coin"), {j: msg for j in s.peers},
                            {j: (1 + k_own,) for j in s.peers})
    recv[s.pid] = msg
    await _status_outcome(s, owners, {j: F.to_int(v[1:]) for j, v in recv.items()}, w, signed)
    coin, ok = _reconstruct_checked(s, {j: v[:1] for j, v in recv.items()})
    if not ok:
        ctx.failed = ctx.failed or "open"
    total = sum(b.size for b in bs)
    rng = CryptoRNG(derive_key(F.to_wire(np.asarray(coin)).tobytes(), "chida18-range-gamma", total))
    gam = F.random(rng, (total,))
    z2t = F.zeros((2, len(owners)))
    k = 0
    one_e = F.from_int(np.ones(1, dtype=np.int64))
    for i, b in enumerate(bs):  # degree 2t: sum_k gamma_k b_k (b_k - 1) and its MAC
        # = sum_k q_k b_k and sum_k q_k (r b_k) with q_k = gamma_k (b_k - 1): one product per
        # bit and the verification's fused dot products (`check_sums`), the same values
        q = F.mul(gam[k : k + b.size], F.sub(b.x.data.reshape(-1), np.broadcast_to(one_e, (b.size,))))
        k += b.size
        u, v = check_sums(F, q, b.x.data.reshape(-1), b.rx.data.reshape(-1))
        z2t[0, i : i + 1] = v.reshape(1)
        z2t[1, i : i + 1] = u.reshape(1)
    rt, r2t = await s.prep.double_randoms((2, len(owners)))
    z, tag = await _reduce(s, z2t, rt, r2t)
    _record(s, bs[0].key, tag, z[0], z[1], value=False)  # (v, r*v): MAC-checked like a product
    out = {}
    lo = (1 << (w - 1)) if signed else 0
    for i, (o, b) in enumerate(zip(owners, bs, strict=True)):
        ctx.ranges.append((tag, o, z[0][i : i + 1]))
        acc = b[w - 1]
        for j in range(w - 2, -1, -1):
            acc = acc + acc + b[j]
        out[o] = acc - lo if lo else acc
    return out


async def input_unchecked(s: Session, x: np.ndarray | None, owner: int, shape: tuple[int, ...], *,
                          announce: bool = False, refused: bool = False) -> MShare:
    """The owner's array x as an MShare: ([x], [r*x]) with [x] always a degree-t sharing,
    NOT range-checked: any field element is accepted. Only for callers that check the range
    themselves (bits checked by `batch.xor_bits`, one-hot group columns, partial scores
    input as bits); everything else uses `input`.

        rho random shared;  open rho to the owner;  owner sends delta = x - rho to all;
        [x] = [rho] + delta;   [r*x] = reduce([r]*[rho]) + delta*[r]   (concurrently)

    Shapes: x: `shape` at the owner (None elsewhere); every party passes `shape` (public).
    Rounds: 2 on the critical path (Stats counts 4: the opening to the owner and the
    owner's delta run concurrently with the 2-round product).
    Bytes: N = prod(shape): every non-owner sends N*e to the owner; the owner sends
    (n - 1)*N*e; plus the product: 4N/3*e per party for n = 3 with 3 | N (see `_reduce`).
    Preprocessing: randoms(shape), double_randoms(shape), and [r] on a new epoch.
    Security: the owner's delta is checked equal at every party by the next verification's
    digest; an inconsistent rho opening makes the owner report it there.
    Refusal (issue 16; `announce`, the same at every party): the delta message carries one
    more element, the owner's status, 0 (its input follows) or 1 (`refused`: the owner found
    its own value outside the declared range and inputs nothing; it sends zeros), then every
    party echoes the status it received (`agree_statuses`, 1 round): a malformed status, or
    one told differently to different parties, is a deviation (CheatingDetectedError, check
    "input.status", at every honest party); an agreed refusal raises InputRangeRefusedError
    naming the owner, with nothing opened. Bytes: + (n - 1)*e at the owner, + (n - 1)*e per
    party (the echo).   Rounds: + 1 (the echo).
    Raises: DomainError (bad x), PartyIndexError, MaliciousUnsupportedError,
    InputRangeRefusedError (announce, the owner refused), CheatingDetectedError (announce).
    """
    xs, st = await input_announced(s, x, owner, shape, announce=announce, refused=refused)
    if announce:
        await agree_statuses(s, [owner], [st], bits=None)
    return xs


async def input_announced(s: Session, x: np.ndarray | None, owner: int, shape: tuple[int, ...], *,
                          announce: bool = True, refused: bool = False) -> tuple[MShare, int]:
    """`input_unchecked`'s protocol without the status echo: returns (the MShare, the status
    this party received: STATUS_OK, STATUS_REFUSED or STATUS_MALFORMED; always STATUS_OK
    without `announce`). The caller MUST pass the statuses of every owner to `agree_statuses`
    (or echo them as `input_many` does) before using the MShare: a status acted on without
    the echo lets an owner make the honest parties' verdicts differ. A malformed status is
    not raised here, so that the echo tells every party of it.
    Rounds, Bytes: `input_unchecked`'s without the echo."""
    _check_party(s, owner, "owner")
    if refused and s.pid != owner:
        raise ParameterError("only the owner can refuse its input")
    if refused and not announce:
        raise ParameterError("a refusal needs announce=True")
    if refused:
        x = None
    shape = tuple(int(d) for d in shape)
    F = s.domain
    if s.pid == owner and not refused:
        if x is None or not isinstance(x, np.ndarray):
            raise DomainError(f"party {owner} owns this input but passed {type(x).__name__}")
        F.check(x)
        if x.shape != shape:
            raise ShapeMismatch(f"input of shape {x.shape}, declared {shape}")
    elif x is not None:
        raise DomainError(f"party {s.pid} passed a value for party {owner}'s input")
    ctx = _state(s)
    key = await _key(s)
    rho = await s.prep.randoms(shape)
    rt, r2t = await s.prep.double_randoms(shape)

    size = int(np.prod(shape, dtype=np.int64))
    status = [STATUS_OK]  # the owner's announced status as this party received it

    async def delta_round(c: Session) -> np.ndarray:
        tag = c.tag("minput-rho")
        if s.pid != owner:
            await c.exchange(tag, {owner: rho}, {})
        else:
            got = await c.exchange(tag, {}, {j: shape for j in c.peers})
            got[owner] = rho
            value, ok = _reconstruct_checked(s, got)
            if not ok:
                ctx.failed = ctx.failed or "input"
            # a failed opening is reported at the verdict; zeros leak nothing of x
            delta = F.sub(x, value) if ok and x is not None else F.zeros(shape)
        tag = c.tag("minput-delta")
        if not announce:
            if s.pid == owner:
                await c.exchange(tag, {j: delta for j in c.peers}, {})
            else:
                delta = (await c.exchange(tag, {}, {owner: shape}))[owner]
        elif s.pid == owner:
            status[0] = int(refused)
            msg = np.concatenate([delta.reshape(-1), F.from_int(np.array([status[0]]))])
            await c.exchange(tag, {j: msg for j in c.peers}, {})
        else:
            msg = (await c.exchange(tag, {}, {owner: (size + 1,)}))[owner]
            st = int(F.to_int(msg[size:])[0])
            # a malformed status (an authenticated peer deviated) is terminal at the echo,
            # where every party hears of it
            status[0] = st if st in (STATUS_OK, STATUS_REFUSED) else STATUS_MALFORMED
            delta = msg[:size].reshape(shape)
        h = hashlib.blake2b(F.to_wire(delta).tobytes(), digest_size=32, person=b"smpc-chida18-in")
        ctx.inputs.append((tag, h.digest()))
        return delta

    delta, (r_rho, tag) = await asyncio.gather(
        delta_round(s.child("min")),
        _reduce(s, F.mul(_rb(key, shape), rho), rt, r2t),
    )
    xs = F.add(rho, delta)
    rxs = F.add(r_rho, F.mul(_rb(key, shape), np.ascontiguousarray(delta)))
    _record(s, key, tag, xs.reshape(-1), rxs.reshape(-1), value=False)
    return MShare(Share(xs, s), Share(rxs, s), key), status[0]


async def refresh(s: Session, x: MShare) -> MShare:
    """x under the current epoch's key: [r'*x] = reduce([r']*[x]) (x's value was fixed
    before the verification that retired its key; the new pair is checked like an input).
    Rounds: 2 if x is of an older epoch, else 0.  Bytes: as one `_reduce` of x.size.
    Preprocessing: double_randoms(x.shape)."""
    _check(s, x)
    key = await _key(s)
    if x.key is key:
        return x
    return await _authenticate(s, x.x, key)


async def authenticate(s: Session, x: Share) -> MShare:
    """A plain degree-t sharing [x] whose value was fixed outside this session (a stored
    model's shares, mpc.node.models) as an MShare under the current key: [r*x] =
    reduce([r]*[x]), the pair (x, r*x) recorded and checked at the next verification like
    a product's (the step `refresh` takes for an MShare of an older epoch).

    Soundness [CGHIKLN18, sec. 3]: with n = 2t + 1, the t + 1 honest parties' shares of [x]
    fix its value x (one degree-t polynomial through them), whatever the corrupt parties
    hold. A corrupt party whose share is x_c + delta (or that sends anything else in the
    reduction) shifts the reduced [r*x] by an additive error e it knows (lambda_c r_c delta
    for the honest-looking cheater, lambda_c its degree-2t Lagrange coefficient), independent
    of the honest shares: the additive attack on one DN07 product that the paper's check
    covers. The recorded pair then has values (x, r*x + e), so T = alpha e + (the other
    pairs' terms) != 0 except with probability 2/|F| (1/|F| over the coefficients, 1/|F|
    over r; 4/|F| when `compress_pending` folds it first). Later, the corrupt party's share
    of [x] enters only its own messages (products: an additive attack, caught likewise;
    openings: every opening checks that all n shares lie on one degree-t polynomial), so an
    inconsistent stored share cannot change any result undetected.
    Rounds: 2.   Bytes: as one `_reduce` of x.size.   Preprocessing: double_randoms(x.shape)
    (and [r] on a new epoch)."""
    if not isinstance(x, Share) or x._s.pid != s.pid or x._s.domain != s.domain:
        raise ShapeMismatch("authenticate: a Share of this session's party and domain")
    s.domain.check(x.data)
    return await _authenticate(s, x, await _key(s))


async def _authenticate(s: Session, x: Share, key: _Key) -> MShare:
    F = s.domain
    xd = np.ascontiguousarray(x.data)
    rt, r2t = await s.prep.double_randoms(x.shape)
    rx, tag = await _reduce(s, F.mul(_rb(key, x.shape), xd), rt, r2t)
    _record(s, key, tag, xd.reshape(-1), rx.reshape(-1), value=False)
    return MShare(x if xd is x.data else Share(xd, s), Share(rx, s), key)


async def mul(s: Session, x: MShare, y: MShare) -> MShare:
    """Elementwise product: ([x*y], [(r*x)*y]), both DN07 products in one reduction.

    Shapes: x, y: S (equal); returns S.   Rounds: 2.
    Bytes: those of `_reduce` on M = 2N elements: (2N + (n - 2)*|c_i|)*e sent by party i,
    8N/3*e for n = 3 when 3 | 2N (about 2/3 of semi-honest Beaver's 4N*e, in twice the rounds).
    Preprocessing: one double sharing of shape (2, *S).
    Security: malicious with abort (checked at the next verification).
    Raises: ShapeMismatch, PreprocessingExhausted, MaliciousUnsupportedError.
    """
    _check(s, x, y)
    if x.shape != y.shape:
        raise ShapeMismatch(f"mul: shapes differ: {x.shape} and {y.shape}")
    x = await refresh(s, x)
    F = s.domain
    rt, r2t = await s.prep.double_randoms((2, *x.shape))
    prod = _pair_prod(F, x.x.data, x.rx.data, y.x.data)
    z, tag = await _reduce(s, prod, rt, r2t)
    _record(s, x.key, tag, z[0].reshape(-1), z[1].reshape(-1))
    return MShare(Share(z[0], s), Share(z[1], s), x.key)


async def matmul(s: Session, x: MShare, y: MShare) -> MShare:
    """Matrix product: ([X @ Y], [(r*X) @ Y]), local degree-2t products, one reduction.

    Shapes: x: (k, d), y: (d, m) or (d,); returns (k, m) or (k,).   Rounds: 2.
    Bytes: those of `_reduce` on M = 2*k*m elements (4M/3*e for n = 3 when 3 | M): linear
    in the output, not in d.   Preprocessing: double_randoms((2, k, m)).
    Security: as `mul`.   Raises: ShapeMismatch, PreprocessingExhausted.
    """
    _check(s, x, y)
    if x.ndim != 2 or y.ndim not in (1, 2) or x.shape[1] != y.shape[0]:
        raise ShapeMismatch(f"matmul: cannot multiply {x.shape} @ {y.shape}")
    x = await refresh(s, x)
    F = s.domain
    zshape = (x.shape[0],) if y.ndim == 1 else (x.shape[0], y.shape[1])
    rt, r2t = await s.prep.double_randoms((2, *zshape))
    prod = _stack(F, F.matmul(x.x.data, y.x.data), F.matmul(x.rx.data, y.x.data))
    z, tag = await _reduce(s, prod, rt, r2t)
    _record(s, x.key, tag, z[0].reshape(-1), z[1].reshape(-1))
    return MShare(Share(z[0], s), Share(z[1], s), x.key)


# ------------------------------------------------------------------------ the check ---
def coefficients(F: Domain, coin: np.ndarray, count: int) -> np.ndarray:
    """The public coefficients alpha_1..alpha_count: a PRG (AES-CTR) keyed by the opened
    coin, uniform field elements."""
    rng = CryptoRNG(derive_key(F.to_wire(np.asarray(coin)).tobytes(), "chida18-alpha", count))
    return F.random(rng, (count,))


def check_value(F: Domain, alphas: np.ndarray, z: np.ndarray, rz: np.ndarray, r: np.ndarray) -> np.ndarray:
    """T = sum_k alpha_k rz_k - r * sum_k alpha_k z_k (on shares: a share of T; on values: T)."""
    u, w = check_sums(F, alphas, z, rz)
    return F.sub(u, F.mul(np.asarray(r).reshape(()), w))


def check_sums(F: Domain, alphas: np.ndarray, z: np.ndarray, rz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum_k alpha_k rz_k, sum_k alpha_k z_k), shape () each: over GF(2^127 - 1) with the
    compiled kernels in one pass (`_jit.check_dots`), else by products and sums."""
    if isinstance(F, Mersenne127) and F._kernels() is not None and alphas.size:
        from protocols.malicious._jit import check_dots

        def words(a: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(a).reshape(-1).view(np.uint64)

        a, zw, rzw = words(alphas), words(z), words(rz)
        u = w = 0
        acc = np.zeros(8, dtype=np.uint64)
        step = 1 << 31  # limb sums of < 2^32 products fit in uint64
        for k in range(0, alphas.size, step):
            m = min(step, alphas.size - k)
            check_dots(a[2 * k :], zw[2 * k :], rzw[2 * k :], m, acc)
            limbs = [int(v) << (32 * (i % 4)) for i, v in enumerate(acc)]
            u, w = u + sum(limbs[:4]), w + sum(limbs[4:])
        return F.from_int(np.array(u % F.modulus, dtype=object)), F.from_int(np.array(w % F.modulus, dtype=object))
    return F.sum(F.mul(alphas, rz)), F.sum(F.mul(alphas, z))


def _sums(F: Domain, alphas: np.ndarray, pairs: list[tuple[str, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(sum_k alpha_k rz_k, sum_k alpha_k z_k) over the pairs in order (alphas: one per
    element), pair by pair: T is linear, no concatenation."""
    u, w, k = F.zeros(()), F.zeros(()), 0
    for _, z, rz in pairs:
        du, dw = check_sums(F, alphas[k : k + z.size], z, rz)
        u, w = F.add(u, du), F.add(w, dw)
        k += z.size
    return u, w


def _compress_alphas(F: Domain, coin: np.ndarray, count: int) -> np.ndarray:
    """`compress_pending`'s coefficients: a PRG (AES-CTR) keyed by its opened coin (a label
    apart from the verification's), uniform field elements."""
    rng = CryptoRNG(derive_key(F.to_wire(np.asarray(coin)).tobytes(), "chida18-compress", count))
    return F.random(rng, (count,))


async def compress_pending(s: Session) -> None:
    """Fold every pair recorded since the last verification into one pair, now: the offline
    phase's share of the verification (issue 16). The preparations (`fixed.prepare_trunc`,
    `compare.prepare_compare`, `batch.prepare_batch`) MAC their masks under the live key and
    make the comparison masks' block products under it; without this, each of those pairs
    (262 per prepared comparison) is summed by the next verification, in the online phase.

        coin = open(a random sharing) [consistency-checked];  alpha = PRG(coin)
        (W, U) = (sum_k alpha_k [z_k], sum_k alpha_k [rz_k])   (local, pairs by tag)
        the pending pairs are replaced by the one pair (W, U)

    Soundness: for additive errors (e_k on rz_k, e'_k on z_k), U - r W = sum_k alpha_k c_k
    with c_k = e_k - r e'_k. Every error is fixed before the coin is opened (a pair is
    recorded after its reduction ends), and r stays secret until the verification that
    retires it. If some e'_k != 0, c = 0 needs r = e_k / e'_k (probability 1/p over the
    secret r); if every e'_k = 0, c = e != 0. For c != 0, sum_k alpha_k c_k = 0 with
    probability 1/p over the coin. The pair (W, U) then enters that verification like any
    other (its own coefficient): a non-zero U - r W fails it except with probability 1/p
    (the random linear combination of [CGHIKLN18, sec. 3], split over two coins drawn after
    the errors they cover are fixed). About 4/p in all: 2^-125 over GF(2^127 - 1).
    Rounds: 1 (0 if nothing is pending).   Bytes: (n - 1)*e per party.
    Preprocessing: randoms((1,)) (the coin).
    Raises: MaliciousUnsupportedError if a concurrent branch records a product meanwhile;
    an inconsistent coin opening is reported at the next verification (check "open")."""
    ctx = _state(s)
    async with ctx.verifying:  # no verification (or _record) interleaves
        if ctx.key is None or sum(p[1].size for p in ctx.pending) <= 1:
            return
        F = s.domain
        pending, ctx.pending = ctx.pending, []
        coin = await s.prep.randoms((1,))
        vals, ok = await _open_checked(s, np.asarray(coin).reshape(1), "mcoin-off")
        if not ok:
            ctx.failed = ctx.failed or "open"
        pending.sort(key=lambda p: p[0])  # the same order at every party
        total = sum(p[1].size for p in pending)
        u, w = _sums(F, _compress_alphas(F, vals, total), pending)
        ctx.pending = [(s.tag("mcompressed"), w.reshape(1), u.reshape(1))]


def _reconstruct_checked(s: Session, shares: dict[int, np.ndarray]) -> tuple[np.ndarray, bool]:
    """The value and whether all n shares lie on one degree-t polynomial."""
    sch = _sch(s)
    base = list(range(sch.t + 1))
    checks = [(sch.lagrange(base, at=sch.xs[j]), shares[j]) for j in range(sch.t + 1, s.n)]
    value, failed = _field(s).lincomb_checked(sch.lagrange(base), [shares[i] for i in base], checks)
    return value, failed is None


#: masked openings of values that may depend on inputs (truncation, comparisons): never
#: while a range-checked input is unverified (`verify_inputs` first)
_MASKED = ("mtrunc", "mcmp")


async def verify_inputs(s: Session) -> None:
    """What a masked opening needs first: the masked openings of `fixed.trunc` and `compare`
    call it (when their masks are prepared; preparing masks verifies anyway), so c = v +
    2^(l-1) + r is opened only for in-range inputs and correct values.
    - an input's range check pending (`input_many`): `verify` (3 rounds);
    - else products since the last check (review5): `check_values` (5 rounds): without it a
      cheater's additive error in a product, multiplied by a secret in a later product, is
      opened in c beyond the mask's statistical range (c = x * error + ...: x shows in c's top
      bits) before the verification that catches it;
    - else nothing (0 rounds).
    Every branch depends on state all honest parties share (a failed check's flag is local:
    it is reported by the next verdict, `check_values`' included)."""
    ctx = _state(s)
    if ctx.ranges:
        await verify(s)
    elif ctx.values:
        await check_values(s)


def masks_made(s: Session) -> None:
    """The end of a mask preparation (`batch.prepare_batch`, `compare.prepare_compare`): its
    products since its own verification are the comparison masks' block products P, which
    `check_values` need not cover before the next masked opening (review5): an error in P
    enters a value only after that comparison's c is opened, and reaches a later masked
    opening multiplied by a secret only through a later product (the prefix, a select),
    which counts. Their pairs stay pending for the next verification."""
    _state(s).values = 0


async def check_values(s: Session) -> None:
    """Check that the values of the products recorded since the last verification carry no
    additive error, keeping the MAC key secret (review5; the value part of the check of
    [CGHIKLN18, sec. 3] with r * W formed by one more DN07 product instead of opening r):

        alpha = PRG(open(coin));  W = sum_k alpha_k [z_k],  U = sum_k alpha_k [r z_k];
        [r W] = reduce([r] [W]);  T = open(U - [r W]) [consistency-checked];  T = 0?;
        verdict round (flags and input digests, as `verify`)

    Soundness: with errors e_k on r z_k and e'_k on z_k, fixed before the coin, and d the
    error a cheater puts into the reduction of r W (chosen knowing alpha), T = sum_k alpha_k
    (e_k - r e'_k) - d. If some e'_k != 0, sum_k alpha_k e'_k = 0 with probability 1/p over
    the coin, and otherwise T = 0 needs r = (sum_k alpha_k e_k - d) / (sum_k alpha_k e'_k),
    probability 1/p over the secret r: a wrong value passes with probability at most 2/p.
    Errors on the MACs alone (every e'_k = 0: the values are right) may be cancelled by d;
    the pairs stay pending, folded into the one pair (W, U) (as `compress_pending`: the coin
    came after the errors were fixed, r is still secret), so the next `verify` (r opened,
    fresh coefficients) catches U - r W = sum_k alpha_k e_k != 0 as before. T = 0 tells
    nothing of r; a T != 0 aborts (r is never used again).
    Rounds: 5 (coin 1, reduction 2, T 1, verdict 1).   Bytes: (n - 1)(2e + 33) per party and
    one `_reduce` of one element.   Preprocessing: randoms((1,)), double_randoms((1,)).
    Raises: CheatingDetectedError (every honest party: "mac" T != 0, "open", "input",
    "reported"); MaliciousUnsupportedError where a concurrent branch's product races it."""
    ctx = _state(s)
    async with ctx.verifying:
        key = ctx.key
        if key is None or not ctx.values or not ctx.pending:
            return
        F = s.domain
        pending = sorted(ctx.pending, key=lambda p: p[0])  # the same order at every party; kept
        coin = await s.prep.randoms((1,))
        vals, ok = await _open_checked(s, np.asarray(coin).reshape(1), "mvcoin")
        failed = ctx.failed or (None if ok else "open")
        total = sum(p[1].size for p in pending)
        rng = CryptoRNG(derive_key(F.to_wire(np.asarray(vals)).tobytes(), "chida18-values", total))
        u, w = _sums(F, F.random(rng, (total,)), pending)
        # the pending pairs folded into (W, U) (`compress_pending`'s argument: the coin came
        # after their errors were fixed, r is still secret), so the next check sums only newer
        # pairs and the verification checks (W, U) like any other pair
        ctx.pending = [(s.tag("mvfold"), w.reshape(1), u.reshape(1))]
        rt, r2t = await s.prep.double_randoms((1,))
        rw, _ = await _reduce(s, F.mul(_rb(key, (1,)), np.ascontiguousarray(w.reshape(1))), rt, r2t)
        # a party that already saw a failure sends zeros (as `_verify`): its shares may be off
        # the sharing (an inconsistent opening it was given) and say nothing of them
        t_share = F.sub(u.reshape(1), rw.reshape(1)) if failed is None else F.zeros((1,))
        tv, ok = await _open_checked(s, t_share, "mvcheck")
        if failed is None:
            failed = "open" if not ok else ("mac" if int(F.to_int(tv)[0]) != 0 else None)
        ctx.values = 0
    await _verdict(s, failed)


async def _open_checked(s: Session, arr: np.ndarray, op: str) -> tuple[np.ndarray, bool]:
    """Open one flat array to all with the consistency check: 1 round, (n-1)*len*e bytes."""
    if op in _MASKED and _state(s).ranges:
        raise MaliciousUnsupportedError(f"a masked opening ({op}) with an input's range check pending "
                                        "(an input in a concurrent branch?): verify first")
    got = await s.exchange(s.tag(op), {j: arr for j in s.peers}, {j: arr.shape for j in s.peers})
    got[s.pid] = arr
    return _reconstruct_checked(s, got)


async def _verdict(s: Session, failed: str | None, *, to: int | None = None, digest: bool = True,
                   owners: tuple[int, ...] = ()) -> None:
    """One round: every party (or only party `to`'s verdict, received by all) sends a flag
    byte and its input digest; raise CheatingDetectedError if any flag is set or digests
    differ. 33 bytes per message."""
    ctx = _state(s)
    mine = np.zeros(VERDICT_BYTES, dtype=np.uint8)
    mine[0] = 0 if failed is None else 1
    if digest:
        mine[1:] = np.frombuffer(_input_digest(ctx), dtype=np.uint8)
        ctx.inputs = []
    tag = s.tag("mverdict")
    senders = s.peers if to is None else ([to] if to != s.pid else [])
    receivers = s.peers if to is None or to == s.pid else []
    try:
        for j in receivers:
            await s.channel.send(j, tag, mine)
        got = {j: await s.channel.recv_array(j, tag, dtype=np.uint8, shape=(VERDICT_BYTES,)) for j in senders}
    except SmpcError as e:
        await s.abort(e)
        raise
    s.stats.rounds += 1
    for j, v in got.items():  # the root cause first: inputs broadcast inconsistently
        if digest and not np.array_equal(v[1:], mine[1:]):
            await _fail(s, "input", f"party {s.pid}: party {j} received different input broadcasts")
    if failed == "input.range":
        await _fail(s, failed, f"party {s.pid}: the input of party(ies) {list(owners)} is outside its "
                    "declared range (checked under MPC)", owners=owners)
    if failed is not None:
        await _fail(s, failed, f"party {s.pid}: the {failed!r} check failed")
    for j, v in got.items():
        if v[0] != 0:
            await _fail(s, "reported", f"party {s.pid}: party {j} reported a failed check")


def _input_digest(ctx: _Ctx) -> bytes:
    """One digest of every (tag, delta hash) received, independent of arrival order."""
    h = hashlib.blake2b(digest_size=32, person=b"smpc-chida18-dg")
    for tag, d in sorted(ctx.inputs):
        h.update(len(tag).to_bytes(4, "little") + tag.encode() + d)
    return h.digest()


async def _fail(s: Session, check: str, message: str, *, owners: tuple[int, ...] = ()) -> None:
    """Terminal: burn the key, the pending pairs, the buffered preprocessing and the prepared
    truncation / comparison masks, abort."""
    msg = f"cheating detected ({check} check): {message}"
    err = InputRangeCheatingError(msg, owners=owners) if check == "input.range" \
        else CheatingDetectedError(msg, check=check)
    ctx = _state(s)
    ctx.key, ctx.pending, ctx.ranges, ctx.failed = None, [], [], check
    queues = getattr(s.prep, "_queues", None)
    if isinstance(queues, dict):
        queues.clear()
    for pool in ("malicious-fixed", "malicious-compare"):  # prepared masks (fixed, compare)
        s._state.ext.pop(pool, None)
    await s.abort(err)
    raise err


async def verify(s: Session) -> None:
    """Check every input and product since the last verification [CGHIKLN18, sec. 3].

        open (r, coin) [consistency-checked];  alpha = PRG(coin);
        [T] = sum alpha_k [rz_k] - r * sum alpha_k [z_k];  open T (with each party's flag);
        T must be 0;  verdict round (flags, input digests)

    Rounds: 3 (0 when nothing was computed since the last verification).
    Bytes: (n - 1)*(2e + 2e + 33) per party, plus (n - 1)*n*e when range checks are
    pending (one v_o per party with T: `input_many`).   Preprocessing: randoms((1,)) (the coin).
    Afterwards r is public: the next operation starts a new epoch.
    Raises: CheatingDetectedError (every honest party, with abort) naming the check: "mac"
    (T != 0), "open" (inconsistent shares of r, the coin, T or v), "input", "reported",
    "input.range" (InputRangeCheatingError naming the owners whose v_o != 0, checked only
    after T = 0);
    MaliciousUnsupportedError (blaming nobody) where a concurrent branch's product races it.
    """
    ctx = _state(s)
    async with ctx.verifying:  # concurrent verifications run one after the other
        await _verify(s, ctx)


async def _verify(s: Session, ctx: _Ctx) -> None:
    if ctx.key is None and not ctx.pending and ctx.failed is None and not ctx.ranges:
        return
    key = await _key(s)
    F = s.domain
    coin = await s.prep.randoms((1,))
    pending, ctx.pending = ctx.pending, []
    ranges, ctx.ranges = ctx.ranges, []
    failed = ctx.failed
    vals, ok = await _open_checked(s, np.concatenate([key.r.reshape(1), coin.reshape(1)]), "mcoin")
    failed = failed or (None if ok else "open")
    if failed is None and pending:
        pending.sort(key=lambda p: p[0])  # the same order at every party
        alphas = coefficients(F, vals[1:2], sum(p[1].size for p in pending))
        r = vals[0:1].reshape(())
        u, w = _sums(F, alphas, pending)  # T is linear: summed per recorded pair
        T = F.sub(u, F.mul(r, w))  # check_value over every pair: one product by r
    else:
        T = F.zeros(())
    # the range checks (`input_many`): one v_o per party o, sent with T (no extra round)
    m = 2 + (s.n if ranges else 0)
    msg = F.zeros((m,))
    msg[0:1] = T.reshape(1)
    msg[1:2] = F.from_int(np.array([0 if failed is None else 1]))
    if ranges and failed is None:
        msg[2:] = _range_values(s, vals[1:2], ranges)
    got = await s.exchange(s.tag("mcheck"), {j: msg for j in s.peers}, {j: (m,) for j in s.peers})
    got[s.pid] = msg
    if failed is None and any(int(F.to_int(got[j][1:2])[0]) != 0 for j in s.peers):
        failed = "reported"
    owners: tuple[int, ...] = ()
    if failed is None:
        tv, ok = _reconstruct_checked(s, {j: got[j][:1] for j in got})
        if not ok:
            failed = "open"
        elif int(F.to_int(tv)[0]) != 0:
            failed = "mac"
    if failed is None and ranges:  # only after the products q passed the MAC check
        vv, ok = _reconstruct_checked(s, {j: got[j][2:] for j in got})
        owners = tuple(int(o) for o in np.flatnonzero(F.to_int(vv) != 0))
        failed = "open" if not ok else ("input.range" if owners else None)
    ctx.key, ctx.epoch = None, ctx.epoch + 1  # r is public now
    ctx.values = 0
    await _verdict(s, failed, owners=owners)


def _range_values(s: Session, coin: np.ndarray, ranges: list[tuple[str, int, np.ndarray]]) -> np.ndarray:
    """Shares of v_o = sum_k alpha'_k q_k over every range entry of party o (n,), alpha' a
    PRG keyed by the verification's coin (a label apart from the MAC check's alphas)."""
    F = s.domain
    ranges = sorted(ranges, key=lambda e: (e[0], e[1]))  # the same order at every party
    total = sum(q.size for _, _, q in ranges)
    rng = CryptoRNG(derive_key(F.to_wire(np.asarray(coin)).tobytes(), "chida18-range", total))
    alphas = F.random(rng, (total,))
    v, k = F.zeros((s.n,)), 0
    for _, o, q in ranges:
        v[o : o + 1] = F.add(v[o : o + 1], F.sum(F.mul(alphas[k : k + q.size], q)).reshape(1))
        k += q.size
    return v


async def open(s: Session, *xs: MShare) -> list[np.ndarray]:  # noqa: A001
    """Verify, then reveal the values of xs to every party.

        verify;  open every [x] with the consistency check (1 round);  verdict (1 round)

    Shapes: any; returns one array per input.
    Rounds: 3 (verify) + 2.   Bytes: verify's + (n - 1)*(sum N_i*e + 33) per party.
    Security: nothing is sent before the verification passed at every party; a value is
    returned only if every party saw consistent shares.
    Raises: CheatingDetectedError (security.cheating_detected) on every honest party.
    """
    _check(s, *xs)
    if not xs:
        return []
    await verify(s)
    flat = np.concatenate([x.x.data.reshape(-1) for x in xs])
    vals, ok = await _open_checked(s, flat, "mopen")
    await _verdict(s, None if ok else "open", digest=False)
    out, k = [], 0
    for x in xs:
        out.append(vals[k : k + x.size].reshape(x.shape))
        k += x.size
    return out


async def reveal_to(s: Session, x: MShare, party: int) -> np.ndarray | None:
    """Verify, then reveal x to `party` only (None elsewhere).

    Rounds: 3 (verify) + 2 (shares to `party`; its verdict to all).
    Bytes: verify's + N*e by every party but `party`; `party` sends (n - 1)*33.
    Raises: CheatingDetectedError on every honest party if `party` sees inconsistent shares.
    """
    _check(s, x)
    _check_party(s, party, "party")
    await verify(s)
    tag = s.tag("mreveal")
    if s.pid != party:
        await s.exchange(tag, {party: x.x.data}, {})
        await _verdict(s, None, to=party, digest=False)
        return None
    got = await s.exchange(tag, {}, {j: x.shape for j in s.peers})
    got[s.pid] = x.x.data
    value, ok = _reconstruct_checked(s, got)
    await _verdict(s, None if ok else "open", to=party, digest=False)
    return value
