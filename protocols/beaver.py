"""Multiplication of secret-shared values with Beaver triples [Beaver91].

D. Beaver, "Efficient Multiparty Protocols Using Circuit Randomization", CRYPTO 1991.
Matrix triples (A, B, C = A @ B) for products of shared matrices follow the same idea
(e.g. Mohassel and Zhang, "SecureML", IEEE S&P 2017, section 4.2).

Works for both schemes: additive shares over Z_2^64 or GF(p) (public terms added by party 0)
and Shamir shares of degree t (public terms added by every party; the products c, d*b, e*a
are local, so the result stays of degree t). e = domain.elem_bytes below.
"""

from __future__ import annotations

import numpy as np

from protocols.core import open
from protocols.errors import ShapeMismatch
from protocols.session import Session, Share


def _same_session(s: Session, *xs: Share) -> None:
    for x in xs:
        if not isinstance(x, Share):
            raise TypeError(f"expected a Share, got {type(x).__name__}")
        if x._s.pid != s.pid or x._s.domain != s.domain:
            raise ShapeMismatch("share does not belong to this session")


async def mul(s: Session, x: Share, y: Share) -> Share:
    """Multiply shared arrays elementwise with one Beaver triple.

        d = open(x - a),  e = open(y - b),  z = c + d*b + e*a + d*e

    Shapes: x, y: S (equal; no broadcasting); returns S.
    Rounds: 1 (d and e opened in one batch).
    Bytes: 2*(n-1)*N*e sent per party.   Preprocessing: one triple of shape S.
    Security: semi-honest; additive: up to n-1 corrupt, Shamir: up to t < n/2 corrupt.
    Raises: ShapeMismatch, PreprocessingExhausted, and the errors of `open`.
    """
    _same_session(s, x, y)
    if x.shape != y.shape:
        raise ShapeMismatch(f"mul: shapes differ: {x.shape} and {y.shape}")
    D = s.domain
    a, b, c = await s.prep.triples(x.shape)
    d, e = await open(s, Share(D.sub(x.data, a), s), Share(D.sub(y.data, b), s))
    # z = c + d*b + e*(a + d) for the party adding public terms, c + d*b + e*a otherwise:
    # one fused multiply-add (a single reduction on fields with costly ones)
    left = D.add(a, d) if s.scheme.adds_public(s.pid) else a
    return Share(D.muladd(c, [(d, b), (left, e)]), s)


async def square(s: Session, x: Share) -> Share:
    """Square a shared array with one square pair (a, a^2).

        d = open(x - a),  z = a2 + 2*d*a + d*d

    Shapes: x: S; returns S.   Rounds: 1.   Bytes: (n-1)*N*e sent per party.
    Preprocessing: one square pair of shape S.   Security: as `mul`.
    Raises: PreprocessingExhausted, and the errors of `open`.
    """
    _same_session(s, x)
    D = s.domain
    a, a2 = await s.prep.square_pairs(x.shape)
    (d,) = await open(s, Share(D.sub(x.data, a), s))
    # z = a2 + d*(2a + d) for the party adding public terms, a2 + 2*d*a otherwise
    t = D.add(a, a)
    if s.scheme.adds_public(s.pid):
        D.add(t, d, out=t)
    return Share(D.muladd(a2, [(t, d)], out=t), s)


async def matmul(s: Session, x: Share, y: Share) -> Share:
    """Multiply shared matrices with one matrix triple (A, B, C = A @ B).

        D = open(X - A),  E = open(Y - B),  Z = C + D @ B + A @ E + D @ E

    Shapes: x: (k, d), y: (d, m) (or y: (d,)); returns (k, m) (or (k,)).
    Rounds: 1.   Bytes: (n-1)*(k*d + d*m)*e sent per party: linear in the operands, not
    k*d*m.   Preprocessing: one matrix triple of shapes (x.shape, y.shape).
    Security: as `mul`.   Raises: ShapeMismatch, PreprocessingExhausted, errors of `open`.
    """
    _same_session(s, x, y)
    if x.ndim != 2 or y.ndim not in (1, 2) or x.shape[1] != y.shape[0]:
        raise ShapeMismatch(f"matmul: cannot multiply {x.shape} @ {y.shape}")
    D = s.domain
    a, b, c = await s.prep.matrix_triples(x.shape, y.shape)
    dd, ee = await open(s, Share(D.sub(x.data, a), s), Share(D.sub(y.data, b), s))
    z = D.add(c, D.matmul(dd, b))
    # A @ E (+ D @ E) = (A + D) @ E for the party adding public terms
    left = D.add(a, dd) if s.scheme.adds_public(s.pid) else a
    D.add(z, D.matmul(left, ee), out=z)
    return Share(np.asarray(z), s)
