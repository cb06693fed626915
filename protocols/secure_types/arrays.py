"""The typed secret arrays: Pending (an operation waiting for its round), SecureArray and its
two types SecInt and SecFxp, operand coercion and the local (linear) operators. The
communicating operators are in protocols.secure_types.ops (see the package docstring)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator, Iterator
from typing import Any

import numpy as np

from protocols import comparison, core, fixed
from protocols.arith.fixedpoint import DEFAULT_F, FixedPoint
from protocols.errors import InputRangeError, SessionMismatch, ShapeMismatch
from protocols.session import Session, Share


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
    out: Share = share + c if sign > 0 else share - c
    return out


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


# the communicating operators (ops imports the names above: keep this import last)
from protocols.secure_types.ops import _compare, _div, _matmul, _mul, _rdiv  # noqa: E402
