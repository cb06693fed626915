"""The operators that need communication: products, matrix products, division, comparisons
and `where`. Each returns a Pending that runs exactly one engine function (see the package
docstring for the table); products and matrix products with public integers stay local."""

from __future__ import annotations

from typing import Any

import numpy as np

from protocols import beaver, comparison, fixed, nonlinear
from protocols.arith.fixedpoint import DEFAULT_F
from protocols.errors import ShapeMismatch
from protocols.secure_types.arrays import (
    Pending,
    SecFxp,
    SecInt,
    SecureArray,
    _as_fxp_share,
    _bcast,
    _bshape,
    _encode,
    _fxp_f,
    _linear,
    _public,
    _same,
    _wrap,
)
from protocols.session import Session, Share
from protocols.truncation import trunc


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
        return _wrap(s, await trunc(s, prod, f), f)

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
    out: SecureArray = await (r * a)  # SecFxp: fixed.mul; SecInt: beaver.mul; public: as `*`
    return out


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
