"""Typed secret arrays for analysts: `SecInt` (integers) and `SecFxp` (fixed point with f
fractional bits), with operators, on top of the protocol functions (which stay the engine).

    async def job(s):
        xs = await s.input(my_salary, range(s.n))         # every party inputs; SecFxp for floats
        return await (sum(xs) / s.n).reveal(), await (xs[0] > xs[1]).reveal()

A value carries its session (the one given to `input`) and its encoding; operators pick the
protocol function from the operand types and nothing else:

    operation              both secret                       one operand public
    + - (unary -) sum      local                             local (a public real is encoded)
    *                      beaver.mul (SecInt or mixed),     local for integers (and integral
                           fixed.mul (SecFxp * SecFxp)       reals); fixed.mul_public for reals
    @                      beaver.matmul / fixed.matmul      local; reals on SecFxp: + trunc
    / (true division)      nonlinear.reciprocal, then the    SecInt: local (x * round(2^f/c));
                           product as `*`                    SecFxp: fixed.mul_public(x, 1/c)
    < <= > >= == !=        comparison.ltz / eqz of the difference (<=, >=, != as 1 - the dual)
    abs(x)                 comparison.absolute
    where(c, a, b)         comparison.select (one Beaver product; none if a, b both public)
    mean                   sum, then division by the (public) count
    reveal(), reveal_to(p) core.open, core.reveal_to, then decoding

Rounds, messages and bytes are exactly those of the functions named (tests check them against
`Stats`); the only addition is `input`'s type word (below).

Design: eager, with awaitables. An operator that needs communication returns a `Pending`, which
runs its protocol function when awaited (`z = await (x * y)`, `await abs(x)`) and offers
`.reveal()` / `.reveal_to(p)` directly (`await (x > y).reveal()`); local operators return the
value itself. SecInt and SecFxp are themselves awaitable (to themselves), so `await expr` is
always right whatever the operand types. We chose this over a lazy graph batched at reveal
because (1) `await` marks every round at the call site, as everywhere else in smpc (a
function that talks to peers is async); (2) the cost of each line is the cost of one engine
function, exactly, while a graph scheduler would re-batch (fewer rounds, but costs that no
longer match the functions, and message tags that depend on the scheduler's order on every
party); (3) an error (a range, an exhausted source, a dead peer) is raised at the line that
caused it, and the session's abort-on-failure rule needs no graph state; (4) batching is what
arrays are for: one operator on an (N,) array is one protocol call of N elements (CrypTen is
eager too; MPyC's futures batch only what runs concurrently). Await operations one at a time
on one session (concurrent branches need `s.child(...)`, as the engine's functions do).

Types: comparisons return SecInt bits (0/1). Mixing SecInt and SecFxp promotes the integer
(exact, local: X * 2^f); so does a SecInt with a public real. SecFxp + 1 adds 1.0 (public
constants are encoded with the value's f). Two SecFxp of different f, a secret from another
session (or party, or domain), or a `Pending` used before it is awaited raise TypeError /
SessionMismatch with a message that says what to do. Shapes broadcast as numpy's (one
operand of shape () or equal shapes are the usual cases); others raise ShapeMismatch.

Input: `input(s, value, owner)` (or `s.input(...)`): the owner's value fixes the type (float
dtypes -> SecFxp with f = DEFAULT_F unless `f=` is given; integer and bool dtypes -> SecInt);
the other parties pass None and learn the shape and the type. The type is announced by the
owner in the input's round: one more message of one 8-byte word per peer (kind and f), then
`core.input` (same rounds; bytes (n-1)*8 more than `core.input` alone). `owner` may be a
sequence of parties: each inputs its own `value`, all in the same round (child sessions), and
a list comes back in owner order.

Ranges (the engine's): SecInt: every int64 on Z_2^64 (products wrap mod 2^64); |x| < 2^63 on
GF(2^127 - 1) and comparisons need |x| < 2^63 there (2^18 on GF(2^61 - 1)). SecFxp: see
protocols.fixed (|x * y| < 2^30 for products on Z_2^64 with f = 16) and
protocols.nonlinear.reciprocal for secret divisors (positive, in [2^-8, 2^16)). Division by a
public c has the error of `fixed.mul_public` (|x| * 2^-(f+1) from encoding 1/c).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator, Iterator, Sequence
from typing import Any

import numpy as np

from network.errors import FrameError, SmpcError
from protocols import beaver, comparison, core, fixed, nonlinear
from protocols.arith.fixedpoint import DEFAULT_F, FixedPoint
from protocols.errors import (
    DomainError,
    InputRangeError,
    PartyIndexError,
    SessionMismatch,
    ShapeMismatch,
)
from protocols.session import Session, Share
from protocols.truncation import trunc

_KIND_INT, _KIND_FXP = 0, 1


# =========================================================================================
# pending operations
# =========================================================================================
class Pending:
    """An operation that needs communication. `await` it to run its protocol function once
    (awaiting it again returns the same value); `.reveal()` and `.reveal_to(p)` await it and
    reveal the result. It has no arithmetic: await it first."""

    __slots__ = ("_make", "_task", "_what")
    __array_ufunc__ = None
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, make: Callable[[], Coroutine[Any, Any, SecureArray]], what: str):
        self._make, self._what = make, what
        self._task: asyncio.Future[SecureArray] | None = None

    def __await__(self) -> Generator[Any, None, SecureArray]:
        if self._task is None:
            self._task = asyncio.ensure_future(self._make())
        return self._task.__await__()

    async def reveal(self) -> Any:
        return await (await self).reveal()

    async def reveal_to(self, party: int) -> Any:
        return await (await self).reveal_to(party)

    def __repr__(self) -> str:
        return f"Pending({self._what}: await it)"

    def _refuse(self, *_: Any) -> Any:
        raise TypeError(
            f"{self._what} needs a round of communication: await it first, "
            f"e.g. `z = await (x * y)`, then use z"
        )

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _refuse
    __truediv__ = __rtruediv__ = __matmul__ = __rmatmul__ = __neg__ = __abs__ = _refuse
    __lt__ = __le__ = __gt__ = __ge__ = __getitem__ = __bool__ = _refuse


# =========================================================================================
# helpers (pure)
# =========================================================================================
def _public(v: Any) -> tuple[Any, bool]:
    """(value, is_integer) of a public operand: Python/numpy ints and bools (is_integer) or
    reals; reals with integral values count as integers (they are exact either way).
    Raises TypeError for anything else (strings, complex, objects, Pending)."""
    if isinstance(v, Pending):
        v._refuse()
    if isinstance(v, bool | np.bool_):
        return int(v), True
    if isinstance(v, int):
        return v, True
    arr = np.asarray(v)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64), True
    if arr.dtype.kind == "f":
        if np.isfinite(arr).all() and (arr == np.rint(arr)).all() and (np.abs(arr) < 2.0**62).all():
            return np.rint(arr).astype(np.int64), True
        return arr.astype(np.float64), False
    raise TypeError(f"cannot combine a secret value with a public {type(v).__name__} ({arr.dtype})")


def _bshape(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ShapeMismatch(f"shapes {' and '.join(map(str, shapes))} do not broadcast") from None


def _bcast(x: Share, shape: tuple[int, ...]) -> Share:
    if x.shape == shape:
        return x
    return Share(np.ascontiguousarray(np.broadcast_to(x.data, shape)), x._s)


def _same(a: SecureArray, b: SecureArray) -> None:
    sa, sb = a._s, b._s
    if sa._state is not sb._state or sa.pid != sb.pid or sa.domain != sb.domain:
        raise SessionMismatch(
            f"{type(a).__name__} and {type(b).__name__} belong to different sessions "
            "(or parties, or domains): combine values of one run only"
        )


# =========================================================================================
# the types
# =========================================================================================
class SecureArray:
    """A secret-shared array of one session (base of SecInt and SecFxp)."""

    __slots__ = ("share", "_s")
    __array_ufunc__ = None  # numpy arrays on the left defer to our reflected operators
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, share: Share, session: Session | None = None):
        if not isinstance(share, Share):
            raise TypeError(f"{type(self).__name__} wraps a Share, got {type(share).__name__}")
        self.share = share
        self._s = session if session is not None else share._s

    # -- shape ---------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.share.shape

    @property
    def ndim(self) -> int:
        return self.share.ndim

    @property
    def size(self) -> int:
        return self.share.size

    @property
    def session(self) -> Session:
        return self._s

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError(f"len() of a 0-d {type(self).__name__}")
        return self.shape[0]

    def __iter__(self) -> Iterator[SecureArray]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, idx: Any) -> SecureArray:
        if isinstance(idx, SecureArray | Pending):
            raise TypeError("indexing with a secret index is not supported")
        return self._new(self.share[idx])

    def reshape(self, *shape: Any) -> SecureArray:
        return self._new(self.share.reshape(*shape))

    @property
    def T(self) -> SecureArray:  # noqa: N802
        return self._new(self.share.T)

    def __bool__(self) -> bool:
        raise TypeError(
            f"a {type(self).__name__} has no truth value: reveal it, or use where(cond, a, b)"
        )

    def __await__(self) -> Generator[Any, None, SecureArray]:
        """Awaiting a computed value returns it, so `await expr` is right for any operands."""
        return self
        yield  # pragma: no cover  (makes this a generator)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, party={self._s.pid}{self._extra()})"

    # -- to be provided by the subclasses --------------------------------------------------
    def _new(self, share: Share) -> SecureArray:
        raise NotImplementedError

    def _extra(self) -> str:
        return ""

    def _decode(self, v: np.ndarray) -> Any:
        raise NotImplementedError

    # -- local arithmetic ------------------------------------------------------------------
    def __neg__(self) -> SecureArray:
        return self._new(-self.share)

    def __add__(self, other: Any) -> SecureArray:
        return _linear(self, other, +1)

    __radd__ = __add__

    def __sub__(self, other: Any) -> SecureArray:
        return _linear(self, other, -1)

    def __rsub__(self, other: Any) -> SecureArray:
        return _linear(-self, other, +1)

    def sum(self, axis: int | tuple[int, ...] | None = None) -> SecureArray:
        return self._new(self.share.sum(axis=axis))

    def mean(self, axis: int | tuple[int, ...] | None = None) -> SecFxp | Pending:
        """sum / count: local for SecInt (a SecFxp comes back), one truncation for SecFxp."""
        total = self.sum(axis)
        count = self.size // max(total.size, 1)
        if count == 0:
            raise ShapeMismatch("mean of an empty array")
        return total / count  # type: ignore[return-value]

    # -- communicating operators --------------------------------------------------------
    def __mul__(self, other: Any) -> SecureArray | Pending:
        return _mul(self, other)

    __rmul__ = __mul__

    def __matmul__(self, other: Any) -> SecureArray | Pending:
        return _matmul(self, other, left=True)

    def __rmatmul__(self, other: Any) -> SecureArray | Pending:
        return _matmul(self, other, left=False)

    def __truediv__(self, other: Any) -> SecureArray | Pending:
        return _div(self, other)

    def __rtruediv__(self, other: Any) -> Pending:
        return _rdiv(other, self)

    def __lt__(self, other: Any) -> Pending:
        return _compare(self, other, "<")

    def __le__(self, other: Any) -> Pending:
        return _compare(self, other, "<=")

    def __gt__(self, other: Any) -> Pending:
        return _compare(self, other, ">")

    def __ge__(self, other: Any) -> Pending:
        return _compare(self, other, ">=")

    def __eq__(self, other: Any) -> Pending:  # type: ignore[override]
        return _compare(self, other, "==")

    def __ne__(self, other: Any) -> Pending:  # type: ignore[override]
        return _compare(self, other, "!=")

    def __abs__(self) -> Pending:
        x = self

        async def run() -> SecureArray:
            return x._new(await comparison.absolute(x._s, x.share))

        return Pending(run, "abs(x)")

    # -- output ----------------------------------------------------------------------------
    async def reveal(self) -> Any:
        """Open to every party (core.open: 1 round, (n-1)*N*e bytes per party) and decode:
        a Python int / float for a 0-d value, an int64 / float64 array otherwise."""
        (v,) = await core.open(self._s, self.share)
        return self._decode(v)

    async def reveal_to(self, party: int) -> Any:
        """Open to `party` only (core.reveal_to: 1 round); None at every other party."""
        v = await core.reveal_to(self._s, self.share, party)
        return None if v is None else self._decode(v)


class SecInt(SecureArray):
    """Secret integers (any shape). Comparisons return SecInt bits 0/1."""

    __slots__ = ()

    def _new(self, share: Share) -> SecInt:
        return SecInt(share, self._s)

    def _decode(self, v: np.ndarray) -> Any:
        signed = np.asarray(self._s.domain.to_signed(v))
        if signed.dtype == object:
            ints = signed.reshape(-1)
            if all(-(2**63) <= int(i) < 2**63 for i in ints):
                signed = signed.astype(np.int64)
        return signed.item() if signed.ndim == 0 else signed

    def to_fxp(self, f: int = DEFAULT_F) -> SecFxp:
        """The same values as SecFxp with f fractional bits (local, exact: X * 2^f)."""
        return SecFxp(self.share * (1 << f), f, self._s)


class SecFxp(SecureArray):
    """Secret fixed-point reals with f fractional bits (value X / 2^f for the shared X)."""

    __slots__ = ("f",)

    def __init__(self, share: Share, f: int = DEFAULT_F, session: Session | None = None):
        super().__init__(share, session)
        if not isinstance(f, int) or not 0 <= f < 62:
            raise InputRangeError(f"SecFxp: fractional bits f must be in 0..61, got {f!r}")
        self.f = f

    def _new(self, share: Share) -> SecFxp:
        return SecFxp(share, self.f, self._s)

    def _extra(self) -> str:
        return f", f={self.f}"

    def _decode(self, v: np.ndarray) -> Any:
        out = FixedPoint(self._s.domain, self.f).decode(v)
        return float(out) if out.ndim == 0 else out


# =========================================================================================
# operand coercion
# =========================================================================================
def _fxp_f(*xs: Any) -> int | None:
    """The common f of the SecFxp among xs (None if none); TypeError if they differ."""
    fs = {x.f for x in xs if isinstance(x, SecFxp)}
    if len(fs) > 1:
        raise TypeError(f"SecFxp values with different fractional bits {sorted(fs)}: rescale one")
    return fs.pop() if fs else None


def _as_fxp_share(x: SecureArray, f: int) -> Share:
    return x.share if isinstance(x, SecFxp) else x.share * (1 << f)


def _encode(s: Session, c: Any, is_int: bool, f: int | None) -> Any:
    """A public constant in the scale of a value with f fractional bits (None: integer)."""
    if f is None:
        return c
    if is_int:
        return (c << f) if isinstance(c, int) else np.asarray(c, dtype=np.int64) * (1 << f)
    return fixed.encode_public(s, c, f)


def _wrap(s: Session, share: Share, f: int | None) -> SecureArray:
    return SecInt(share, s) if f is None else SecFxp(share, f, s)


def _with_public(share: Share, c: Any, sign: int) -> Share:
    """share + sign * c for a public integer (array) c, broadcasting both."""
    if not isinstance(c, int):
        c = np.asarray(c)
        share = _bcast(share, _bshape(share.shape, c.shape))
        c = np.broadcast_to(c, share.shape)
    return share + c if sign > 0 else share - c


def _linear(x: SecureArray, other: Any, sign: int) -> SecureArray:
    s = x._s
    if isinstance(other, SecureArray):
        _same(x, other)
        f = _fxp_f(x, other)
        a, b = (x.share, other.share) if f is None else (_as_fxp_share(x, f), _as_fxp_share(other, f))
        shape = _bshape(a.shape, b.shape)
        a, b = _bcast(a, shape), _bcast(b, shape)
        return _wrap(s, a + b if sign > 0 else a - b, f)
    c, is_int = _public(other)
    f = _fxp_f(x)
    if f is None and not is_int:
        f = DEFAULT_F  # SecInt with a public real: promote (exact)
    a = x.share if f is None else _as_fxp_share(x, f)
    return _wrap(s, _with_public(a, _encode(s, c, is_int, f), sign), f)


# =========================================================================================
# products, division, comparison, select
# =========================================================================================
def _mul(x: SecureArray, other: Any) -> SecureArray | Pending:
    s = x._s
    if isinstance(other, SecureArray):
        _same(x, other)
        f = _fxp_f(x, other)
        shape = _bshape(x.shape, other.shape)
        a, b = _bcast(x.share, shape), _bcast(other.share, shape)
        both_fxp = isinstance(x, SecFxp) and isinstance(other, SecFxp)

        async def run() -> SecureArray:
            if both_fxp:
                return _wrap(s, await fixed.mul(s, a, b, f), f)  # type: ignore[arg-type]
            return _wrap(s, await beaver.mul(s, a, b), f)  # int * int or int * fxp: exact

        return Pending(run, "secret * secret")
    c, is_int = _public(other)
    f = _fxp_f(x)
    if is_int:  # local: an integer times anything keeps its scale
        return _wrap(s, _scale(x.share, c), f)
    if f is None:  # SecInt times a real: the encoded real carries the f bits (exact product)
        return _wrap(s, _scale(x.share, fixed.encode_public(s, c, DEFAULT_F)), DEFAULT_F)
    xs = x.share
    cc = np.broadcast_to(c, _bshape(xs.shape, np.shape(c)))
    xs = _bcast(xs, cc.shape)

    async def run_public() -> SecureArray:
        return _wrap(s, await fixed.mul_public(s, xs, cc, f), f)

    return Pending(run_public, "secret fixed point * public real")


def _scale(share: Share, c: Any) -> Share:
    if isinstance(c, int):
        return share * c
    c = np.asarray(c)
    share = _bcast(share, _bshape(share.shape, c.shape))
    return share * np.broadcast_to(c, share.shape)


def _matmul(x: SecureArray, other: Any, *, left: bool) -> SecureArray | Pending:
    s = x._s
    if isinstance(other, SecureArray):  # only reached with x on the left
        _same(x, other)
        f = _fxp_f(x, other)
        both_fxp = isinstance(x, SecFxp) and isinstance(other, SecFxp)
        a, b = x.share, other.share

        async def run() -> SecureArray:
            if both_fxp:
                return _wrap(s, await fixed.matmul(s, a, b, f), f)  # type: ignore[arg-type]
            return _wrap(s, await beaver.matmul(s, a, b), f)

        return Pending(run, "secret @ secret")
    c, is_int = _public(other)
    c = np.asarray(c)
    f = _fxp_f(x)
    if not is_int:
        c = fixed.encode_public(s, c, DEFAULT_F if f is None else f)
    try:
        prod = x.share @ c if left else x.share.__rmatmul__(c)
    except ValueError as e:
        raise ShapeMismatch(f"matmul: {e}") from None
    if is_int:
        return _wrap(s, prod, f)
    if f is None:  # SecInt @ reals: the encoded reals carry the f bits
        return _wrap(s, prod, DEFAULT_F)

    async def run_public() -> SecureArray:
        return _wrap(s, await trunc(s, prod, f), f)  # type: ignore[arg-type]

    return Pending(run_public, "secret fixed point @ public reals")


def _div(x: SecureArray, other: Any) -> SecureArray | Pending:
    s = x._s
    if isinstance(other, SecureArray):
        _same(x, other)
        ff = _fxp_f(x, other)
        f = DEFAULT_F if ff is None else ff
        a, d = x, _as_fxp_share(other, f)
        return Pending(lambda: _times_reciprocal(s, a, d, f), "secret / secret")
    c, _ = _public(other)
    if (np.asarray(c) == 0).any():
        raise ZeroDivisionError("division of a secret value by a public zero")
    inv = 1.0 / np.asarray(c, dtype=np.float64)
    if isinstance(x, SecInt):  # local: X * round(2^f / c) is a fixed-point value
        return _wrap(s, _scale(x.share, fixed.encode_public(s, inv, DEFAULT_F)), DEFAULT_F)
    return _mul(x, inv if inv.ndim else float(inv))


async def _times_reciprocal(s: Session, a: Any, d: Share, f: int) -> SecureArray:
    """a * (1/d) with 1/d = nonlinear.reciprocal(d) (d in [2^-8, 2^16), clipped outside)."""
    r = SecFxp(await nonlinear.reciprocal(s, d, f), f, s)
    return await (r * a)  # SecFxp: fixed.mul; SecInt: beaver.mul; public: as `*`


def _rdiv(c: Any, x: SecureArray) -> Pending:
    s = x._s
    _public(c)  # TypeError early for unsupported operands
    ff = _fxp_f(x)
    f = DEFAULT_F if ff is None else ff
    d = _as_fxp_share(x, f)
    return Pending(lambda: _times_reciprocal(s, c, d, f), "public / secret")


_DUAL = {"<=": ">", ">=": "<", "!=": "=="}


def _compare(x: SecureArray, other: Any, op: str) -> Pending:
    s = x._s
    if isinstance(other, SecureArray):
        _same(x, other)
        f = _fxp_f(x, other)
    else:
        _, is_int = _public(other)
        f = _fxp_f(x)
        if f is None and not is_int:
            f = DEFAULT_F
    diff = (_linear(x, other, -1) if f is None else _linear(_to(x, f), other, -1)).share
    base = _DUAL.get(op, op)

    async def run() -> SecureArray:
        if base == "==":
            bit = await comparison.eqz(s, diff)
        elif base == "<":
            bit = await comparison.ltz(s, diff)
        else:
            bit = await comparison.ltz(s, -diff)
        return SecInt(1 - bit if op in _DUAL else bit, s)

    return Pending(run, f"secret {op} comparison")


def _to(x: SecureArray, f: int) -> SecFxp:
    return x if isinstance(x, SecFxp) else SecFxp(x.share * (1 << f), f, x._s)


def where(cond: SecInt, a: Any, b: Any) -> Pending:
    """cond ? a : b elementwise for secret bits cond (0/1, e.g. a comparison's result) and
    secret or public a, b: comparison.select (one Beaver product: 1 round, 2*(n-1)*N*e bytes
    per party; no communication when a and b are both public, though it is still awaited).
    The result is SecFxp if a or b is SecFxp or a public real, SecInt otherwise; shapes
    broadcast. cond must hold 0/1 (a comparison's result): other values give garbage."""
    if isinstance(cond, Pending):
        cond._refuse()
    if not isinstance(cond, SecInt):
        raise TypeError(f"where: the condition must be secret SecInt bits, got {type(cond).__name__}")
    s = cond._s
    secrets = [v for v in (a, b) if isinstance(v, SecureArray)]
    for v in secrets:
        _same(cond, v)
    f = _fxp_f(*secrets)
    pubs = [None if isinstance(v, SecureArray) else _public(v) for v in (a, b)]
    if f is None and any(p is not None and not p[1] for p in pubs):
        f = DEFAULT_F
    shapes = [cond.shape] + [v.shape if isinstance(v, SecureArray) else np.shape(p[0])  # type: ignore[index]
                             for v, p in zip((a, b), pubs, strict=True)]
    shape = _bshape(*shapes)
    bit = _bcast(cond.share, shape)

    def operand(v: Any, p: tuple[Any, bool] | None) -> Any:
        if p is None:
            return _bcast(v.share if f is None else _as_fxp_share(v, f), shape)
        return np.broadcast_to(np.asarray(_encode(s, p[0], p[1], f), dtype=np.int64), shape)

    xa, xb = operand(a, pubs[0]), operand(b, pubs[1])

    async def run() -> SecureArray:
        if isinstance(xb, Share) and not isinstance(xa, Share):  # select wants a secret x
            return _wrap(s, await comparison.select(s, 1 - bit, xb, xa), f)
        return _wrap(s, await comparison.select(s, bit, xa, xb), f)

    return Pending(run, "where(cond, a, b)")


# =========================================================================================
# input
# =========================================================================================
def _encode_input(s: Session, value: Any, f: int | None) -> tuple[np.ndarray, int, int]:
    """(domain array, kind, f) of the owner's value. Raises DomainError / InputRangeError."""
    if value is None:
        raise DomainError(f"party {s.pid} owns this input but passed None")
    if isinstance(value, SecureArray | Pending | Share):
        raise DomainError("input takes a plaintext value; this one is already secret")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise DomainError(f"input: not an array of numbers: {e}") from None
    kind = arr.dtype.kind
    if kind == "f":
        ff = DEFAULT_F if f is None else f
        return FixedPoint(s.domain, ff).encode(arr), _KIND_FXP, ff
    if kind in "iub":
        if kind == "u" and arr.size and int(arr.max()) >= 2**63:
            raise InputRangeError("input: unsigned integers >= 2^63 do not fit a signed value")
        ints = arr.astype(np.int64)
        half = s.domain.modulus // 2
        if s.domain.modulus < 2**64 and ints.size and int(np.abs(ints).max()) >= half:
            raise InputRangeError(f"input: integers must satisfy |x| < {half} on {s.domain}")
        return s.domain.from_int(ints), _KIND_INT, 0
    raise DomainError(f"input: expected integers or reals, got dtype {arr.dtype}")


async def _input_one(s: Session, value: Any, owner: int, f: int | None) -> SecureArray:
    if not isinstance(owner, int | np.integer) or isinstance(owner, bool) or not 0 <= owner < s.n:
        raise PartyIndexError(f"owner must be a party index in 0..{s.n - 1}, got {owner!r}")
    owner = int(owner)
    tag = s.tag("input.type")
    if s.pid == owner:
        data, kind, ff = _encode_input(s, value, f)
        word = np.array([kind | (ff << 8)], dtype=np.uint64)
        try:
            for j in s.peers:
                await s.channel.send(j, tag, word)
        except SmpcError as e:
            await s.abort(e)
            raise
        share = await core.input(s, data, owner)
    else:
        if value is not None:
            raise DomainError(f"party {s.pid} passed a value for party {owner}'s input (pass None)")
        try:
            w = await s.channel.recv_array(owner, tag, dtype=np.uint64, shape=(1,))
            kind, ff = int(w[0]) & 0xFF, int(w[0]) >> 8
            if kind not in (_KIND_INT, _KIND_FXP) or ff > 61 or (kind == _KIND_INT and ff):
                raise FrameError(f"party {s.pid}: malformed type word from party {owner}")
        except SmpcError as e:
            await s.abort(e)
            raise
        share = await core.input(s, None, owner)
    return SecInt(share, s) if kind == _KIND_INT else SecFxp(share, ff, s)


async def input(  # noqa: A001
    s: Session, value: Any, owner: int | Sequence[int], *, f: int | None = None
) -> Any:
    """Secret-share `value` of party `owner` as SecInt (integer / bool dtypes) or SecFxp
    (float dtypes, f fractional bits: DEFAULT_F = 16 unless given); the other parties pass
    None and receive the type and the shape. With a sequence of owners every party passes
    its own value and gets a list, in owner order (concurrently: one round of latency).

    Shapes: value: any (numpy arrays, scalars, lists, pandas objects); returns that shape.
    Rounds: 1 per owner (Stats counts core.input's round; a sequence runs them concurrently).
    Messages, Bytes: those of core.input plus one 8-byte type word to each peer from the
    owner: (n-1)*(8 + 8*ndim + N*e) bytes sent by the owner, 0 by the others.
    Security: as core.input; the type (integer or fixed point, f) is public, like the shape.
    Raises: DomainError (owner passes None, a non-owner passes a value, wrong dtype),
    InputRangeError (NaN, inf, out of range), PartyIndexError, FrameError.
    """
    if isinstance(owner, int | np.integer):
        return await _input_one(s, value, int(owner), f)
    owners = [int(o) for o in owner]
    if len(set(owners)) != len(owners):
        raise PartyIndexError(f"input: owners repeat: {owners}")

    async def one(j: int) -> SecureArray:
        got = await _input_one(s.child(f"input{j}"), value if j == s.pid else None, j, f)
        got._s = s  # the value belongs to the caller's session, not to the branch
        got.share = Share(got.share.data, s)
        return got

    return list(await asyncio.gather(*(one(j) for j in owners)))


__all__ = ["Pending", "SecFxp", "SecInt", "SecureArray", "input", "where"]
