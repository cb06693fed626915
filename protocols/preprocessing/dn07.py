"""Dealer-free preprocessing for Shamir sharing with an honest majority [DN07].

I. Damgard and J. B. Nielsen, "Scalable and Unconditionally Secure Multiparty Computation",
CRYPTO 2007, sections 3-4 (random and double sharings by hyper-invertible / Vandermonde
extraction, multiplication by degree reduction through a "king").

Security: semi-honest (passive), against up to t < n/2 corrupt parties (n >= 2t + 1),
given private authenticated channels; information-theoretic without PRSS except the
boolean triples (computational, from OT extension, see below); computational with PRSS. Nothing is checked: an active
adversary can make the items wrong without being detected (the DN07 consistency checks on
the extra n - 2t sharings and MAC'd variants are not implemented).

PRSS (the default while C(n, t) <= prss.MAX_SETS, i.e. n <= 9; `prss=False` forces the
extraction below): random and double sharings, the statistical masks (bounded randoms and
the high part of truncation pairs) and boolean triples come from pseudo-random secret
sharing keyed once per session (protocols.preprocessing.prss, Cramer-Damgard-Ishai TCC
2005): no communication, so a triple costs one king reduction, a daBit its dealing and one
reduction, a truncation pair only its f low bits, and boolean triples nothing (replicated
products, Araki et al. CCS 2016 for n = 3). PRSS security is computational (AES as a PRF)
and the integer masks hide with statistical distance 2^-(kappa - ceil(log2 C(n, t))).

Building blocks without PRSS (F = GF(p), x_i = scheme.xs[i], V the (n - t) x n Vandermonde
matrix V[j, i] = (i + 1)^j):

- Random sharings (section 3.1): every party deals K random secrets with degree-t polynomials
  (and, for a *double sharing*, the same secret again with degree 2t). Party i's K
  dealings are stacked into S_i; everybody computes R_j = sum_i V[j, i] * S_i for
  j < n - t. Any n - t columns of V are an invertible Vandermonde matrix, so whatever the t
  corrupt dealers chose, the n - t outputs are uniform and unknown to them. One round,
  (n - 1) * K * (#degrees) elements sent per party for (n - t) * K sharings.
- Degree reduction (section 4, "king"): for degree-2t shares z of a product and a double
  sharing (r_t, r_2t), parties send z - r_2t to a king, who reconstructs the uniformly
  masked d = z - r and sends it back; [z]_t = [r]_t + d. The batch is split into n chunks
  and party j is the king of chunk j, so the load is balanced. Two rounds.
- Triples: random [a], [b], double ([r]_t, [r]_2t); c = reduce(a * b). 3 rounds per batch.
- Random bits and daBits (default, `bit_method="xor"`): parties 0..t deal random bits,
  b = their XOR folded in a tree with t multiplications (x XOR y = x + y - 2xy); any t
  parties miss an honest dealer's bit. Each dealer's own bit is its XOR share of b (0 at
  parties > t), so the same item is a daBit [RW19]: a Shamir sharing and an n-party XOR
  sharing of one bit, at the cost of a random bit (t products, 1 + 2 ceil(log2(t + 1))
  rounds); random bits are the daBits' arithmetic halves (one pool). Semi-honest only (a
  dealer could deal a non-bit unchecked).
- Random bits (`bit_method="sqrt"`, square-root trick, e.g. [DFKNT06, sec. 5], as in
  MP-SPDZ/MPyC for p odd):
  a square pair ([a], [a^2]); open u = a^2 (reveals nothing but a^2, which hides the sign of
  a); v = sqrt(u); b = (a / v + 1) / 2 is a uniform bit since a / v = +-1 uniformly. Needs
  p = 3 (mod 4) (true for 2^61 - 1, 2^127 - 1) so that sqrt(u) = u^((p + 1) / 4).
- Matrix triples for (k x d) @ (d x m): random [A], [B], double sharing of shape (k, m);
  C_2t = A_i @ B_i locally (a degree-2t sharing), then one degree reduction.
- Truncation pairs: `bits` random bits b_j, r = sum_j 2^j b_j, r >> f = sum_{j>=f} 2^(j-f) b_j.
- Bounded randoms (uniform in [0, 2^bits), for the comparisons of Catrina and de Hoogh):
  sum_j 2^j b_j from `bits` random bits, by Horner's rule (additions only). Exact, the
  trusted dealer's distribution; a sum of party-local values would be cheaper but neither
  uniform nor below 2^bits, which the comparisons' field-room bound assumes.

- edaBits [EGKRS20] of l bits (l <= 64, 2^l < p; comparison.eda asks for l = 64 over
  GF(2^127 - 1)): l daBits, r = sum_i 2^i b_i (additions), XOR word = OR_i (x_i << i).
  Cost per edaBit: l daBits = t * l products (64 at n = 3). EGKRS20's cheaper edaBits
  (local randomness and a boolean adder) would need an n-party binary adder per item.
- Boolean (AND) triples on 64-bit words, XOR-shared among all n parties: pairwise IKNP OT
  extension with Chou-Orlandi base OTs (protocols.preprocessing._otext, shared with the OT
  source): every cross term a_q & b_p is 64 bit-OTs per word and ordered pair [IKNP03;
  ALSZ13]. 2 rounds per refill (+2 once for the base OTs), (n - 1)(64 * 16 + 8 k) bytes
  sent per party and a-word. Computational (CDH on edwards25519 in the ROM, fixed-key AES
  as a correlation-robust hash), secure against up to n - 1 corrupt, hence also here.
  (An information-theoretic alternative, DN07 over an extension field GF(2^k), would need
  k >= log2(n + 1) and bit-sliced field products; not implemented.)

Every kind works over any prime field p = 3 (mod 4) the Shamir scheme runs on, in particular
GF(2^61 - 1) and GF(2^127 - 1) (the domain for fixed point over Shamir); trunc_triples
(Z_2^64 only) does not apply to fields.

[DFKNT06] Damgard, Fitzi, Kiltz, Nielsen, Toft, "Unconditionally secure constant-rounds
multi-party computation for equality, comparison, bits and exponentiation", TCC 2006.
[RW19] D. Rotaru, T. Wood, "MArBled circuits: mixing arithmetic and boolean circuits with
active security", INDOCRYPT 2019.
[EGKRS20] D. Escudero, S. Ghosh, M. Keller, R. Rachuri, P. Scholl, "Improved primitives for
MPC over mixed arithmetic-binary circuits", CRYPTO 2020.
[IKNP03] Y. Ishai, J. Kilian, K. Nissim, E. Petrank, "Extending oblivious transfers
efficiently", CRYPTO 2003.
[ALSZ13] G. Asharov, Y. Lindell, T. Schneider, M. Zohner, "More efficient oblivious transfer
and extensions for faster secure computation", CCS 2013.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from protocols.arith.domain import PrimeField
from protocols.errors import ParameterError, PreprocessingExhausted
from protocols.preprocessing._fieldlin import (
    _U64,
    _Lin,
    _matmul_shape,
    _nonzero,
    _size,
    _weighted,
    sqrt_bits,
)
from protocols.preprocessing._offline import offline_session
from protocols.preprocessing._otext import OTExtension
from protocols.preprocessing.base import KINDS, SHAMIR_KINDS, Preprocessing, Shape, mtt_request
from protocols.preprocessing.prss import MAX_SETS, PRSS, prss_sets
from protocols.session import Session
from protocols.sharing.schemes import ShamirShares
from protocols.sharing.shamir import lagrange_coefficients

__all__ = ["DN07", "make_dn07", "offline_session"]

_Gen = Callable[[int], Awaitable[list[np.ndarray]]]  # count -> flat arrays of length count


class DN07(Preprocessing):
    """One party's DN07 source: generates items with its peers on demand, in batches.

    Construct with the party's online Session (Shamir scheme over a prime field with
    n >= 2t + 1). It runs over the same channel under its own tag prefix and counts its
    traffic in `self.stats` (not in the online session's Stats). Every party must request
    the same items in the same order, as with every source.

    `batch`: elementwise items (triples, square pairs, randoms, bits) are generated at least
    `batch` at a time and pooled; matrix triples are generated per request.

    `bool_chunk`: boolean triples are made `bool_chunk` a-words per OT extension (bounds its
    memory: 64 * bool_chunk OTs per ordered pair) and at least that many per refill.

    `prss`: None (default) uses PRSS when C(n, t) <= prss.MAX_SETS; True / False force it.

    Rounds per refill with PRSS (plus 1 once for the key agreement): randoms 0, triples /
    square pairs / matrix (truncation) triples 2 (the king), bits and daBits
    1 + 2 ceil(log2(t + 1)) ("xor") or 4 ("sqrt"), boolean triples and bounded randoms 0,
    trunc_pairs and edaBits those of their f (l) bits. Without PRSS: randoms 1, triples 3,
    matrix triples 3, boolean triples 2 (+2 once for the base OTs), bounded randoms and
    trunc_pairs those of their bits.
    Bytes per party per elementwise triple (amortised, n parties, e bytes per element):
    e * 2 * (n - 1) / n for the king, plus without PRSS e * (n - 1) * 4 / (n - t) for the
    sharings.
    Security: semi-honest, t < n/2 (see the module docstring).
    Raises: ParameterError for a scheme / field it cannot serve, PreprocessingExhausted for
    parameters no protocol uses (as the dealer), FrameError / SessionAbortedError for a
    peer's malformed or missing messages (received field elements are checked canonical,
    OT messages for exact shape and dtype).
    """

    name = "dn07"

    def __init__(
        self, s: Session, *, batch: int = 1 << 16, bit_method: str = "xor", bool_chunk: int = 1 << 12,
        prss: bool | None = None,
    ):
        if bit_method not in ("xor", "sqrt"):
            raise ParameterError(f"dn07 bit_method must be 'xor' or 'sqrt', got {bit_method!r}")
        self.bit_method = bit_method
        sch = s.scheme
        if getattr(sch, "kind", None) != "shamir":
            raise ParameterError("dn07 preprocessing needs the Shamir scheme")
        if not isinstance(s.domain, PrimeField):  # is_field
            raise ParameterError(f"dn07 needs a prime field, got {s.domain}")
        assert isinstance(sch, ShamirShares)
        n, t = s.n, sch.t
        if n < 2 * t + 1:
            raise ParameterError(f"dn07 needs n >= 2t + 1, got n={n}, t={t}")
        self.s = offline_session(s, "dn07")
        self.stats = self.s.stats
        self.F, self.n, self.t = s.domain, n, t
        self.xs = tuple(sch.xs)
        self.batch = int(batch)
        p = self.F.modulus
        self.lin = _Lin(self.F)
        self.V = [[pow(i + 1, j, p) for i in range(n)] for j in range(n - t)]
        self.lag_t = lagrange_coefficients(p, self.xs[: t + 1], 0)
        self.lag_2t = lagrange_coefficients(p, self.xs[: 2 * t + 1], 0)
        self._pools: dict[str, list[np.ndarray]] = {}
        self._lock = asyncio.Lock()
        # boolean triples: pairwise OT extension over this source's own session and tags
        self._ot = OTExtension(self.s)
        self.bool_chunk = max(1, int(bool_chunk))
        # random and double sharings: PRSS (no communication) for small n, else DN07's
        # Vandermonde extraction (one round per batch)
        n_sets = len(prss_sets(n, t))
        self.prss = n_sets <= MAX_SETS if prss is None else bool(prss)
        if self.prss and n_sets > MAX_SETS:
            raise ParameterError(f"dn07: PRSS with n={n}, t={t} needs {n_sets} key sets (> {MAX_SETS})")
        #: bits of the PRSS integer masks lost to the sum over the C(n, t) key sets
        self.mask_loss = max(0, (n_sets - 1).bit_length())
        self._prss: PRSS | None = None

    # -- building blocks ---------------------------------------------------------------
    def _deal(self, secret: np.ndarray, deg: int) -> list[np.ndarray]:
        """Shares of `secret` under a fresh random polynomial of degree `deg` (Horner)."""
        F, rng = self.F, self.s.rng
        coeffs = [secret] + [F.random(rng, secret.shape) for _ in range(deg)]
        out = []
        for x in self.xs:
            acc = coeffs[deg].copy()
            for k in range(deg - 1, -1, -1):
                acc = F.add(self.lin.scale(acc, x), coeffs[k])
            out.append(acc)
        return out

    async def random_sharings(self, count: int, degrees: Sequence[Sequence[int]]) -> list[list[np.ndarray]]:
        """`count` random sharings per spec, in one round. A spec is a tuple of degrees of
        sharings of one common secret: (t,) a random sharing, (t, 2t) a double sharing.
        Returns out[spec][degree index] = this party's shares, arrays of length count.
        With PRSS (`self.prss`): no communication (the keys are agreed in one round on
        first use), (t,) from PRSS, (t, 2t) from PRSS plus a degree-2t PRZS [CDI05]."""
        if self.prss:
            g = await self._prss_state()
            out = []
            for spec in degrees:
                if tuple(spec) == (self.t,):
                    out.append([g.randoms(count)])
                elif tuple(spec) == (self.t, 2 * self.t):
                    out.append(list(g.double(count)))
                else:  # pragma: no cover (no generator asks for other specs)
                    raise ParameterError(f"dn07: no PRSS sharing of degrees {spec}")
            return out
        F, n, t = self.F, self.n, self.t
        K = -(-count // (n - t))
        rows = [d for spec in degrees for d in spec]
        per_party = [F.zeros((len(rows), K)) for _ in range(n)]
        r = 0
        for spec in degrees:
            secret = F.random(self.s.rng, (K,))
            for d in spec:
                for j, sh in enumerate(self._deal(secret, d)):
                    per_party[j][r] = sh
                r += 1
        me = self.s.pid
        got = await self.s.exchange(
            self.s.tag("share"),
            {j: per_party[j] for j in range(n) if j != me},
            {j: (len(rows), K) for j in range(n) if j != me},
        )
        got[me] = per_party[me]
        S = [got[i] for i in range(n)]
        # extraction: R_j = sum_i V[j, i] S_i, j < n - t; all rows at once
        R = np.empty((len(rows), (n - t) * K), dtype=F.dtype)
        for j in range(n - t):
            R[:, j * K : (j + 1) * K] = self.lin.comb(self.V[j], S)
        out, r = [], 0
        for spec in degrees:
            out.append([R[r + k, :count] for k in range(len(spec))])
            r += len(spec)
        return out

    async def _prss_state(self) -> PRSS:
        if self._prss is None:
            self._prss = await PRSS.setup(self.s)
        return self._prss

    async def _mask_ints(self, count: int, bits: int) -> np.ndarray:
        """Shares of statistical masks r < 2^bits: with PRSS the sum over the C(n, t) key
        sets of uniform integers below 2^(bits - mask_loss) (no communication; any t
        parties miss one uniform summand of bits - mask_loss bits); without PRSS, uniform
        in [0, 2^bits) from `bits` random bits."""
        if self.prss and bits - self.mask_loss >= 1:
            return (await self._prss_state()).ints(count, bits - self.mask_loss)
        return await self._gen_bounded(count, bits)

    async def reduce(self, z2t: np.ndarray, r_t: np.ndarray, r_2t: np.ndarray) -> np.ndarray:
        """Degree reduction with kings: degree-2t shares z (any shape) -> degree-t shares."""
        F, n, me = self.F, self.n, self.s.pid
        shape = z2t.shape
        d = F.sub(z2t.reshape(-1), r_2t.reshape(-1))
        bounds = np.linspace(0, d.size, n + 1).astype(np.int64)
        chunk = [(int(bounds[j]), int(bounds[j + 1])) for j in range(n)]
        lo, hi = chunk[me]
        got = await self.s.exchange(
            self.s.tag("king"),
            {j: d[chunk[j][0] : chunk[j][1]] for j in range(n) if j != me},
            {j: (hi - lo,) for j in range(n) if j != me},
        )
        got[me] = d[lo:hi]
        mine = self.lin.comb(self.lag_2t, [got[i] for i in range(2 * self.t + 1)])
        back = await self.s.exchange(
            self.s.tag("king-open"),
            {j: mine for j in range(n) if j != me},
            {j: (chunk[j][1] - chunk[j][0],) for j in range(n) if j != me},
        )
        back[me] = mine
        opened = np.concatenate([back[j] for j in range(n)])
        return F.add(r_t.reshape(-1), opened).reshape(shape)

    async def open(self, x: np.ndarray) -> np.ndarray:
        """Open degree-t shares to everybody (one round; t + 1 shares interpolated)."""
        me = self.s.pid
        got = await self.s.exchange(
            self.s.tag("open"),
            {j: x for j in range(self.n) if j != me},
            {j: x.shape for j in range(self.n) if j != me},
        )
        got[me] = x
        return self.lin.comb(self.lag_t, [got[i] for i in range(self.t + 1)])

    # -- generators (flat arrays of length count) ---------------------------------------
    async def _gen_randoms(self, count: int) -> list[np.ndarray]:
        ((r,),) = await self.random_sharings(count, [(self.t,)])
        return [r]

    async def _gen_triples(self, count: int) -> list[np.ndarray]:
        t = self.t
        (a,), (b,), (rt, r2t) = await self.random_sharings(count, [(t,), (t,), (t, 2 * t)])
        c = await self.reduce(self.F.mul(a, b), rt, r2t)
        return [a, b, c]

    async def _gen_square_pairs(self, count: int) -> list[np.ndarray]:
        t = self.t
        (a,), (rt, r2t) = await self.random_sharings(count, [(t,), (t, 2 * t)])
        return [a, await self.reduce(self.F.mul(a, a), rt, r2t)]

    async def _gen_bits(self, count: int) -> list[np.ndarray]:
        if self.bit_method == "sqrt":
            return await self._gen_bits_sqrt(count)
        return await self._gen_bits_xor(count)

    async def _gen_bits_xor(self, count: int) -> list[np.ndarray]:
        """Random bits as the XOR of t + 1 dealt bits: the arithmetic halves of daBits."""
        (b, _) = await self._gen_dabits(count)
        return [b]

    async def _gen_dabits(self, count: int) -> list[np.ndarray]:
        """daBits over GF(p) [RW19], with t + 1 dealers: parties 0..t each deal `count`
        random bits b_j with degree-t Shamir sharings; b = b_0 XOR ... XOR b_t is folded
        pairwise in a tree with x XOR y = x + y - 2xy, t DN07 multiplications (a double
        sharing and a king reduction each, all of one tree level in one reduction). The XOR
        share of party j is its own bit b_j (0 for parties > t), in bit 0 of a uint64 word.
        Any t parties miss an honest dealer's bit, so b is uniform and hidden from them; the
        kings see only z - r for uniform r. Semi-honest: a dealer is trusted to deal a bit.

        Rounds: 1 + 2 ceil(log2(t + 1)) (3 for n = 3, 5 for n = 5); the double sharings go
        out in the dealing round. Products per daBit: t. Elements sent per party and daBit
        (e bytes each): (n - 1) by a dealer, plus t * (2 (n - 1) / (n - t) + 2 (n - 1) / n)
        for the double sharings and the kings (n = 3: 2 + 10/3, i.e. 85 bytes over
        GF(2^127 - 1), amortised over the parties: 2/3 * 2 + 10/3 elements = 75 bytes).
        Returns [arithmetic shares, XOR words]."""
        F, t, me, n = self.F, self.t, self.s.pid, self.n
        dealers = range(t + 1)
        out: dict[int, np.ndarray] = {}
        mine = np.zeros(count, dtype=_U64)
        if me in dealers:
            mine = self.s.rng.bits(count).astype(_U64, copy=False)
            shares = self._deal(F.from_int(mine), t)
            out = {j: shares[j] for j in range(n) if j != me}
        expect: dict[int, tuple[int, ...]] = {j: (count,) for j in dealers if j != me}
        got, doubles = await asyncio.gather(
            self.s.exchange(self.s.tag("bitdeal"), out, expect),
            self.random_sharings(count, [(t, 2 * t)] * t),
        )
        if me in dealers:
            got[me] = shares[me]
        xs = [got[j] for j in dealers]
        used = 0
        while len(xs) > 1:  # one tree level: all its products in one reduction
            P = len(xs) // 2
            lhs = np.concatenate(xs[0 : 2 * P : 2])
            rhs = np.concatenate(xs[1 : 2 * P : 2])
            rt = np.concatenate([doubles[used + i][0] for i in range(P)])
            r2t = np.concatenate([doubles[used + i][1] for i in range(P)])
            used += P
            prod = await self.reduce(F.mul(lhs, rhs), rt, r2t)
            x = F.sub(F.add(lhs, rhs), F.add(prod, prod))
            xs = [x[i * count : (i + 1) * count] for i in range(P)] + xs[2 * P :]
        return [xs[0], mine]

    async def _gen_bits_sqrt(self, count: int) -> list[np.ndarray]:
        F = self.F
        p = F.modulus
        if p % 4 != 3:
            raise ParameterError(f"dn07 random bits need p = 3 mod 4, got p mod 4 = {p % 4}")
        extra = 8 + count // 1000  # zeros (probability 1/p each) are dropped
        a, a2 = await self._gen_square_pairs(count + extra)
        u = await self.open(a2)
        keep = np.flatnonzero(_nonzero(F, u))[:count]
        if keep.size < count:  # pragma: no cover (probability about (count / p)^8)
            raise ParameterError("dn07: too many zero squares; the field is too small for bits")
        return [sqrt_bits(F, a[keep], u[keep])]

    async def _gen_bounded(self, count: int, bits: int) -> np.ndarray:
        """count uniform integers of `bits` bits, sum_j 2^j b_j from `bits` random bits each
        (Horner: doublings are additions, no multiplications)."""
        b = await self._bits(count * bits)
        return _weighted(self.F, b.reshape(bits, count), 0, bits)

    async def _take(self, kind: str, count: int, gen: _Gen, batch: int | None = None) -> list[np.ndarray]:
        """`count` items of a pooled kind along the last axis, under the lock (so items go
        out in request order, the same at every party); a refill generates at least `batch`
        (default self.batch) items in one call of `gen`."""
        async with self._lock:
            pool = self._pools.get(kind)
            have = 0 if pool is None else pool[0].shape[-1]
            if have < count:
                fresh = await gen(max(self.batch if batch is None else batch, count - have))
                pool = fresh if pool is None else [
                    np.concatenate([o, f], axis=-1) for o, f in zip(pool, fresh, strict=True)
                ]
            assert pool is not None
            out = [a[..., :count] for a in pool]
            self._pools[kind] = [a[..., count:] for a in pool]
            return out

    async def _bits(self, count: int) -> np.ndarray:
        """Shares of `count` random bits: the arithmetic halves of daBits with the default
        "xor" method (one pool serves bits, daBits and edaBits), else the sqrt method's."""
        if self.bit_method == "xor":
            b, _ = await self._take("dabits", count, self._gen_dabits)
            return b
        (b,) = await self._take("bits", count, self._gen_bits)
        return b

    # -- the Preprocessing interface ------------------------------------------------------
    #: what this source supplies (Shamir over GF(p)): no Z_2^64 kinds
    SUPPLIES = frozenset(KINDS) - {"trunc_triples", "ltz_tuples"}  # matrix_trunc_triples: the GF(p) "cs" form

    def supports(self, kind: str) -> bool:
        if kind in SHAMIR_KINDS:  # double sharings: the Shamir-only kind
            return True
        if kind not in KINDS:
            raise ValueError(f"unknown preprocessing kind {kind!r}")
        return kind in self.SUPPLIES

    async def triples(self, shape: Shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        shape = tuple(shape)
        a, b, c = await self._take("triples", _size(shape), self._gen_triples)
        return a.reshape(shape), b.reshape(shape), c.reshape(shape)

    async def square_pairs(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        shape = tuple(shape)
        a, a2 = await self._take("square_pairs", _size(shape), self._gen_square_pairs)
        return a.reshape(shape), a2.reshape(shape)

    async def randoms(self, shape: Shape) -> np.ndarray:
        shape = tuple(shape)
        (r,) = await self._take("randoms", _size(shape), self._gen_randoms)
        return r.reshape(shape)

    async def double_randoms(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        """(degree-t, degree-2t) shares of one uniform r: DN07 double sharings (section 3.1),
        pooled; 1 round per refill."""
        shape = tuple(shape)
        rt, r2t = await self._take("doubles", _size(shape), self._gen_doubles)
        return rt.reshape(shape), r2t.reshape(shape)

    async def _gen_doubles(self, count: int) -> list[np.ndarray]:
        ((rt, r2t),) = await self.random_sharings(count, [(self.t, 2 * self.t)])
        return [rt, r2t]

    async def bits(self, shape: Shape) -> np.ndarray:
        shape = tuple(shape)
        return (await self._bits(_size(shape))).reshape(shape)

    async def matrix_triples(self, x_shape: Shape, y_shape: Shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x_shape, y_shape = tuple(x_shape), tuple(y_shape)
        F, t = self.F, self.t
        z_shape = _matmul_shape(x_shape, y_shape)
        na, nb, nc = _size(x_shape), _size(y_shape), _size(z_shape)
        async with self._lock:
            (ab,), (rt, r2t) = await self.random_sharings(max(na + nb, nc), [(t,), (t, 2 * t)])
            A, B = ab[:na].reshape(x_shape), ab[na : na + nb].reshape(y_shape)
            rt, r2t = rt[:nc], r2t[:nc]  # both specs come in max(na + nb, nc) sharings
            C = await self.reduce(F.matmul(A, B), rt.reshape(z_shape), r2t.reshape(z_shape))
        return A, B, C

    async def matrix_trunc_triples(self, x_shape: Shape, y_shape: Shape, f: int) -> tuple[np.ndarray, ...]:
        """GF(p) material of truncation.sub_trunc_matmul ("cs"): (A, B, C = A @ B, r, r_hi,
        A @ r_hi) for x_shape (k, d) @ y_shape (d,), (r, r_hi) = trunc_pairs((d,), f,
        l + kappa) with l = truncation.value_bits(field). A, B: random sharings; C and
        A @ r_hi: local degree-2t products reduced together by one king reduction (2
        rounds, 2k elements), plus the truncation pair's bits. Raises
        PreprocessingExhausted for other shapes or f outside 0 < f < l - 1."""
        from protocols.truncation import KAPPA, value_bits

        x_shape, y_shape, _ = mtt_request(self.name, x_shape, y_shape)
        ell = value_bits(self.F, KAPPA)
        if not 0 < f < ell - 1 or (1 << (ell + KAPPA)) >= self.F.modulus:
            raise PreprocessingExhausted(f"{self.name}: no matrix truncation triples with f={f} in {self.F}")
        F, t = self.F, self.t
        r, r_hi = await self.trunc_pairs(y_shape, f, ell + KAPPA)
        k, d = x_shape
        async with self._lock:
            (ab,), (rt, r2t) = await self.random_sharings(max(k * d + d, 2 * k), [(t,), (t, 2 * t)])
            A, B = ab[: k * d].reshape(x_shape), ab[k * d : k * d + d]
            z = np.concatenate([F.matmul(A, B), F.matmul(A, r_hi)])
            CR = await self.reduce(z, rt[: 2 * k], r2t[: 2 * k])
        return A, B, CR[:k], r, r_hi, CR[k:]

    async def trunc_pairs(self, shape: Shape, f: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
        """Shares of (r, r >> f) with 0 <= r < 2^bits, a statistical mask for the
        probabilistic truncation (truncation "cs") that needs r mod 2^f exactly uniform.
        With PRSS (default for small n): r = r' + 2^f r'', r' = sum_{j<f} 2^j b_j from f
        random bits, r'' the PRSS integer mask of `_mask_ints(bits - f)` (no
        communication; any t parties miss a uniform summand of bits - f - mask_loss bits,
        mask_loss = ceil(log2 C(n, t)): 2 at n = 3, 4 at n = 5), so the truncation's
        statistical distance is 2^-(kappa - mask_loss) instead of 2^-kappa [CS10, sec. 2,
        PRandInt; CDI05]. Without PRSS (or no room): r uniform from `bits` random bits,
        the trusted dealer's distribution. Needs 0 < f < bits and 2^bits < p.
        Rounds: those of f (PRSS) or `bits` random bits."""
        shape = tuple(shape)
        p = self.F.modulus
        if not 0 < f < bits or (1 << bits) >= p:
            raise ParameterError(f"trunc pairs need 0 < f < bits and 2^bits < p, got f={f}, bits={bits}")
        N = _size(shape)
        if self.prss and bits - f - self.mask_loss >= 1:
            # r = r' + 2^f r'': r' uniform in [0, 2^f) from f random bits (the unbiased
            # rounding needs it exact), r'' a PRSS integer mask below 2^(bits - f)
            b = (await self._bits(N * f)).reshape(f, N)
            lo = _weighted(self.F, b, 0, f)
            hi = await self._mask_ints(N, bits - f)
            F = self.F
            assert isinstance(F, PrimeField)  # checked in __init__ (is_field)
            r = F.lincomb([1, 1 << f], [lo, hi])
            return r.reshape(shape), hi.reshape(shape)
        b = (await self._bits(N * bits)).reshape(bits, N)
        r = _weighted(self.F, b, 0, bits)
        hi = _weighted(self.F, b, f, bits)
        return r.reshape(shape), hi.reshape(shape)

    async def bounded_randoms(self, shape: Shape, bits: int) -> np.ndarray:
        """Shares of statistical masks r in [0, 2^bits) (what the comparisons use them
        for): with PRSS the sum over the C(n, t) key sets of uniform integers below
        2^(bits - mask_loss), no communication, any t parties missing one uniform summand
        (statistical hiding 2^-(kappa - mask_loss) for a kappa-bit mask); without PRSS
        uniform in [0, 2^bits) from `bits` random bits (the trusted dealer's distribution).
        Needs 0 < bits and 2^bits < p; otherwise PreprocessingExhausted (as the dealer).
        Rounds: 0 with PRSS (after the key agreement), else those of `bits`."""
        shape = tuple(shape)
        if not isinstance(bits, int | np.integer) or not 0 < bits or (1 << int(bits)) >= self.F.modulus:
            raise PreprocessingExhausted(f"{self.name}: cannot supply {bits}-bit randoms in {self.F}")
        return (await self._mask_ints(_size(shape), int(bits))).reshape(shape)

    async def dabits(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        """daBits: (Shamir share of a uniform bit b, XOR share of b in bit 0 of a uint64
        word), XOR-shared among all n parties (the trusted dealer's format; the high bits
        are 0 here, the dealer randomises them and no consumer reads them). See
        `_gen_dabits`: t + 1 dealt bits, t products, 1 + 2 ceil(log2(t + 1)) rounds per
        refill. Security: semi-honest, t < n/2."""
        shape = tuple(shape)
        a, x = await self._take("dabits", _size(shape), self._gen_dabits)
        return a.reshape(shape), x.reshape(shape)

    async def edabits(self, shape: Shape, bits: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """edaBits [EGKRS20]: r uniform in [0, 2^bits) as a Shamir sharing and bit by bit in
        XOR shares among all n parties packed in one uint64 word (bit i = bit i of r), from
        `bits` daBits: r = sum_i 2^i b_i (Horner, additions only), word = OR_i (x_i << i).
        Needs 1 <= bits <= 64 and 2^bits < p (as the trusted dealer), else
        PreprocessingExhausted. Cost: `bits` daBits, i.e. t * bits products (64 at n = 3).
        Security: semi-honest, t < n/2."""
        shape = tuple(shape)
        if not isinstance(bits, int | np.integer) or not 1 <= bits <= 64 or (1 << int(bits)) >= self.F.modulus:
            raise PreprocessingExhausted(f"{self.name}: no {bits}-bit edaBits in {self.F}")
        bits, N = int(bits), _size(shape)
        a, x = await self._take("dabits", N * bits, self._gen_dabits)
        a, x = a.reshape(bits, N), x.reshape(bits, N)
        r = _weighted(self.F, a, 0, bits)
        word = np.bitwise_or.reduce((x & np.uint64(1)) << np.arange(bits, dtype=_U64)[:, None], axis=0)
        return r.reshape(shape), word.reshape(shape)

    async def bool_triples(self, shape: Shape, k: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boolean (AND) triples on 64-bit words, XOR-shared among all n parties: a of
        `shape`, b and c = a & b of (k, *shape) (the trusted dealer's format). With PRSS
        (default for small n): from the replicated sharings the PRSS keys define, with no
        communication at all (`PRSS.bool_triples`: local products of CNF shares and an XOR
        zero-sharing; semi-honest, t < n/2). Otherwise from pairwise
        IKNP OT extension with k-bit messages (protocols.preprocessing._otext
        .OTExtension.gen_bool_triples, shared with the OT source). Base OTs once per pair
        on first use (2 rounds); then 2 rounds per refill of `bool_chunk` a-words, 64 OTs
        per a-word and ordered pair, (n - 1) (64 * 16 + 8 k) bytes sent per party and
        a-word. Security: semi-honest and computational (CDH / fixed-key AES, see _otext),
        up to n - 1 corrupt, which covers DN07's t < n/2. Raises PreprocessingExhausted
        for k outside 1..64 (as the OT source), FrameError for a peer's malformed message."""
        shape = tuple(shape)
        if not isinstance(k, int | np.integer) or not 1 <= k <= 64:
            raise PreprocessingExhausted(f"{self.name}: boolean triples need 1 <= k <= 64, got {k}")
        k = int(k)
        chunk = self.batch if self.prss else self.bool_chunk
        a, b, c = await self._take(f"bool{k}", _size(shape), self._gen_bool(k), chunk)
        return a.reshape(shape), b.reshape((k, *shape)), c.reshape((k, *shape))

    def _gen_bool(self, k: int) -> _Gen:
        async def gen(L: int) -> list[np.ndarray]:
            if self.prss:  # replicated (CNF) shares from the PRSS keys: no communication
                g = await self._prss_state()
                return list(g.bool_triples(L, k))
            parts = [await self._ot.gen_bool_triples(min(self.bool_chunk, L - o), k) for o in range(0, L, self.bool_chunk)]
            if len(parts) == 1:
                return parts[0]
            return [np.concatenate([p[i] for p in parts], axis=-1) for i in range(3)]

        return gen


async def make_dn07(s: Session, *, batch: int = 1 << 16) -> DN07:
    """Factory for run_local / the node: a DN07 source over `s` (no communication yet)."""
    return DN07(s, batch=batch)
