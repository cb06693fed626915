"""SPDZ2k matrix products: Beaver's trick with a MACed matrix triple over Z_2^128.

[CDESX18] R. Cramer, I. Damgard, D. Escudero, P. Scholl, C. Xing, "SPDZ2k: Efficient MPC mod
2^k with Active Security and Its Application to Machine Learning", CRYPTO 2018 (sec. 3.3,
the online phase: linear operations and Beaver products on authenticated shares).
[MZ17] P. Mohassel, Y. Zhang, "SecureML", IEEE S&P 2017, sec. 4.1 (matrix Beaver triples:
(A, B, C = A B) with one opening of X - A and Y - B per product).

    D = open(X - A),  E = open(Y - B)            (one partial opening, recorded for the check)
    Z = C + D B + A E + D E       (D E added by party 0 only)
    M(Z) = M(C) + D M(B) + M(A) E + alpha_i (D E)  (the MAC shares: linear in the MACed items)

X (m, k), Y (k, n) or (k,): the opening is (m k + k n) elements, not the m k n of an
elementwise product. The opened D, E are covered by the batched MAC check that precedes any
output (`spdz2k.check`): a changed share of an opened difference, a changed matrix-triple
share or a changed MAC makes it fail on every honest party (CheatingDetectedError).

Matrix triples come from the preprocessing's `matrix_triples` kind when it has one (the
in-process dealer, `Spdz2kDealerView.matrix_triples`). A source without it (the dealer-free
`spdz2k_ot.Spdz2kOT`) gets them built from its element triples (`matrix_triple`): MACed
random A (m, k), B (k, n) (`randoms`) and the m k n products A_il B_lj by one elementwise
Beaver round on m k n element triples (each sacrificed by the OT source before it is handed
out), summed over l: C = A B. Why this and not a direct matrix vOLE/OT triple: it reuses the
element triples' sacrifice and MACs unchanged (no new soundness argument), at the price of
m k n element triples and one extra round per matrix triple (made ahead with the masks: the
products' openings are MAC-checked like every other opening). A matrix-OLE construction
(MP-SPDZ's "matrix triples" for SPDZ2k) would cost O(m k + k n + m n) correlations instead;
not built here.
"""

from __future__ import annotations

import numpy as np

from protocols.arith import ring128 as R
from protocols.errors import ShapeMismatch
from protocols.malicious import spdz2k
from protocols.malicious.spdz2k import AShare
from protocols.session import Session

__all__ = ["matmul", "matrix_triple", "matrix_triple_from_elements"]


async def matrix_triple(s: Session, m: int, k: int, n: int) -> tuple[np.ndarray, ...]:
    """This party's (A, M(A), B, M(B), C, M(C)) with A (m, k), B (k, n), C = A B mod 2^128:
    from the source's `matrix_triples`, else from m k n element triples (module docstring:
    1 round, (n - 1) 32 m k n bytes per party; recorded for the next MAC check)."""
    ctx = spdz2k._ctx(s)
    fetch = getattr(ctx.prep, "matrix_triples", None)
    if fetch is not None:
        got: tuple[np.ndarray, ...] = await fetch((m, k, n))
        return got
    return await matrix_triple_from_elements(s, m, k, n)


async def matrix_triple_from_elements(s: Session, m: int, k: int, n: int) -> tuple[np.ndarray, ...]:
    """A matrix triple from MACed randoms A, B and m k n element triples (module docstring).
    Rounds: 1.   Bytes: (n_parties - 1) 32 m k n per party (recorded for the next check)."""
    ctx = spdz2k._ctx(s)
    ax, am = await ctx.prep.randoms((m, k))
    bx, bm = await ctx.prep.randoms((k, n))
    A, B = AShare(ax, am, s), AShare(bx, bm, s)

    def wide(v: AShare, shape: tuple[int, ...]) -> AShare:
        return AShare(np.ascontiguousarray(np.broadcast_to(v.x, (*shape, 2))),
                      np.ascontiguousarray(np.broadcast_to(v.m, (*shape, 2))), s)

    P = await spdz2k.mul(s, wide(A.reshape(m, k, 1), (m, k, n)), wide(B.reshape(1, k, n), (m, k, n)))
    C = P.sum(axis=1)
    return A.x, A.m, B.x, B.m, C.x, C.m


async def matmul(s: Session, x: AShare, y: AShare, *, triple: tuple[np.ndarray, ...] | None = None) -> AShare:
    """The matrix product x @ y of AShares with one MACed matrix triple (module docstring).

    Shapes: x (m, k), y (k, n) or (k,); returns (m, n) or (m,).   Rounds: 1.
    Bytes: (n_parties - 1) * 16 * (m k + k n) sent per party.
    Preprocessing: one matrix triple (m, k, n) (`matrix_triple`), or `triple` if given.
    Security: malicious with abort, up to n - 1 corrupt: D and E are checked at the next
    `spdz2k.check` (before any output).
    Raises: ShapeMismatch; CheatingDetectedError at the next check.
    """
    spdz2k._check(s, x, y)
    if x.ndim != 2 or y.ndim not in (1, 2) or x.shape[1] != y.shape[0]:
        raise ShapeMismatch(f"matmul: cannot multiply {x.shape} @ {y.shape}")
    vec = y.ndim == 1
    y2 = y.reshape(y.shape[0], 1) if vec else y
    m, k = x.shape
    n = y2.shape[1]
    ctx = spdz2k._ctx(s)
    a, ma, b, mb, c, mc = triple if triple is not None else await matrix_triple(s, m, k, n)
    if a.shape != (m, k, 2) or b.shape != (k, n, 2) or c.shape != (m, n, 2):
        raise ShapeMismatch(f"matmul: a matrix triple of {a.shape[:-1]} @ {b.shape[:-1]} for {x.shape} @ {y.shape}")
    d, e = await spdz2k._open_partial(s, "smm", [x - AShare(a, ma, s), y2 - AShare(b, mb, s)])
    de = R.matmul(d, e)
    z = R.add(R.add(c, R.matmul(d, b)), R.matmul(a, e))
    if s.pid == 0:
        z = R.add(z, de)
    mz = R.add(R.add(mc, R.matmul(d, mb)), R.matmul(ma, e))
    mz = R.add(mz, R.mul(de, spdz2k._alpha(ctx)))
    out = AShare(z, mz, s)
    return out.reshape(m) if vec else out
