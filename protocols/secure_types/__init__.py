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

Modules: arrays (Pending, SecureArray, SecInt, SecFxp, the local operators, coercion),
ops (products, division, comparisons, where), inputs (input and its type word).

Ranges (the engine's): SecInt: every int64 on Z_2^64 (products wrap mod 2^64); |x| < 2^63 on
GF(2^127 - 1) and comparisons need |x| < 2^63 there (2^18 on GF(2^61 - 1)). SecFxp: see
protocols.fixed (|x * y| < 2^30 for products on Z_2^64 with f = 16) and
protocols.nonlinear.reciprocal for secret divisors (positive, in [2^-8, 2^16)). Division by a
public c has the error of `fixed.mul_public` (|x| * 2^-(f+1) from encoding 1/c).
"""

from protocols.secure_types.arrays import Pending, SecFxp, SecInt, SecureArray
from protocols.secure_types.inputs import input  # noqa: A004
from protocols.secure_types.ops import where

__all__ = ["Pending", "SecFxp", "SecInt", "SecureArray", "input", "where"]
