"""Pseudo-random secret sharing (PRSS) for Shamir sharing with few parties: random sharings,
zero sharings, double sharings and bounded random integers with NO communication once the
keys are agreed.

R. Cramer, I. Damgard, Y. Ishai, "Share Conversion, Pseudorandom Secret-Sharing and
Applications to Secure Computation", TCC 2005, sections 3 (PRSS) and 4 (PRZS, and PRSS over
the integers); used the same way by MPyC (mpyc/thresha.py) and by Catrina and Saxena (FC
2010, sec. 2: PRandInt for the statistical masks of probabilistic truncation).

For every set A of n - t parties, the members of A share a key k_A (|A| = n - t, so any t
parties miss at least one key: the key of the complement of a t-set containing them). With
f_A the polynomial of degree t with f_A(0) = 1 and f_A(x_j) = 0 for the t parties j not in
A, and psi_A a pseudo-random value that all members of A derive from k_A:

    PRSS   [r]_t  : party i's share = sum_{A ∋ i} psi_A f_A(x_i),   r = sum_A psi_A
    PRZS   [0]_2t : party i's share = sum_{A ∋ i} sum_{k=1..t} psi_{A,k} x_i^k f_A(x_i)
    double ([r]_t, [r]_2t) = ([r]_t, [r]_t + [0]_2t)
    ints   [r]_t with r = sum_A psi_A, psi_A uniform integers in [0, 2^w): an integer below
           C(n, t) 2^w, of which any t parties miss the uniform summand psi_A of a set
           they are not in (a statistical mask, not a uniform value)

Every output is a polynomial sharing of the stated degree (f_A has degree t, x^k f_A degree
at most 2t and no constant term). The sum over A of the psi_A that t parties do not know is
pseudo-random to them, so r is uniform (pseudo-random) and hidden; zero sharings are
uniformly random among degree-2t sharings of 0 as far as any t parties can tell.

Keys: agreed once per session (`PRSS.setup`, one round): the smallest member of each set A
draws k_A from its CSPRNG and sends it to the other members over the session's private,
authenticated channels. psi_A for call number c and label L is the AES-256-CTR stream of
the key derive_key(k_A, L, c) (protocols.prg), so parties that make the same calls in the
same order derive the same values, and values of different calls are independent.

Cost: every party holds the keys of the C(n-1, n-t-1) sets it is in (2 of 3 at n = 3,
t = 1; 6 of 10 at n = 5, t = 2); per output element it expands one field element per key
(t per key for a zero sharing) and forms one linear combination; no communication. That is
exponential in n, so PRSS is for small n (as MPyC: it switches to dealing beyond a bound):
`MAX_SETS` bounds C(n, t).

Security: semi-honest, t < n/2 (and t < n - t so every t-set misses a key), computational
(AES as a PRF). Raises: ParameterError for n, t out of range or too many sets.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from protocols.arith.domain import PrimeField
from protocols.errors import ParameterError
from protocols.prg import KEY_BYTES, CryptoRNG, derive_key
from protocols.session import Session
from protocols.sharing.schemes import ShamirShares

__all__ = ["MAX_SETS", "PRSS", "field_ints", "prss_sets", "set_polys"]

#: largest number of key sets C(n, t) we accept (n = 7, t = 3 has 35; n = 9 has 126)
MAX_SETS = 64

_U64 = np.uint64


def prss_sets(n: int, t: int) -> list[tuple[int, ...]]:
    """The sets A of n - t parties (0-based indices), in lexicographic order."""
    return list(itertools.combinations(range(n), n - t))


def set_polys(p: int, xs: Sequence[int], n: int, t: int) -> dict[tuple[int, ...], list[int]]:
    """For each set A: [f_A(x_i) for every party i] mod p, with f_A of degree t,
    f_A(0) = 1 and f_A(x_j) = 0 for j not in A: f_A(x) = prod_{j not in A} (x_j - x) / x_j."""
    out = {}
    for A in prss_sets(n, t):
        vals = []
        for i in range(n):
            v = 1
            for j in range(n):
                if j not in A:
                    v = v * (xs[j] - xs[i]) % p * pow(xs[j], -1, p) % p
            vals.append(v)
        out[A] = vals
    return out


def field_ints(F: PrimeField, lo: np.ndarray, hi: np.ndarray | None) -> np.ndarray:
    """Field elements lo + 2^64 hi for nonnegative integers below the modulus (limbs)."""
    if hi is None:
        return F.from_int(lo)
    if F.dtype.names == ("lo", "hi"):
        out = np.empty(lo.shape, dtype=F.dtype)
        out["lo"], out["hi"] = lo, hi
        return out
    return F.from_int(lo.astype(object) + (hi.astype(object) << 64))


def _uniform_ints(rng: CryptoRNG, shape: tuple[int, ...], w: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Limbs of uniform integers in [0, 2^w), 1 <= w <= 128."""
    lo = rng.uint64(shape)
    if w < 64:
        lo &= _U64((1 << w) - 1)
    if w <= 64:
        return lo, None
    hi = rng.uint64(shape)
    if w < 128:
        hi &= _U64((1 << (w - 64)) - 1)
    return lo, hi


class PRSS:
    """One party's PRSS state: its keys (one per set A it belongs to) and the public
    coefficients. Build with `await PRSS.setup(s)` (one round), or directly from keys
    (tests; the keys dict maps each set A containing `pid` to its 32-byte key)."""

    def __init__(self, F: PrimeField, n: int, t: int, pid: int, xs: Sequence[int], keys: dict[tuple[int, ...], bytes]):
        check_params(n, t)
        self.F, self.n, self.t, self.pid = F, n, t, pid
        self.xs = tuple(int(x) for x in xs)
        p = F.modulus
        self.sets = [A for A in prss_sets(n, t) if pid in A]
        missing = [A for A in self.sets if A not in keys]
        if missing:
            raise ParameterError(f"PRSS: party {pid} has no key for the sets {missing}")
        self.keys = {A: bytes(keys[A]) for A in self.sets}
        polys = set_polys(p, self.xs, n, t)
        xi = self.xs[pid]
        #: f_A(x_i) and, for zero sharings, x_i^k f_A(x_i) (k = 1..t), per own set
        self.c_rand = [polys[A][pid] for A in self.sets]
        self.c_zero = [[pow(xi, k, p) * polys[A][pid] % p for k in range(1, t + 1)] for A in self.sets]
        self._calls = 0
        self.n_sets = len(prss_sets(n, t))

    @classmethod
    async def setup(cls, s: Session) -> PRSS:
        """Agree on the keys over `s`'s channels (one round): the smallest member of each
        set draws its key and sends it to the other members. Bytes: 32 per (set it leads,
        other member): n = 3: 64, 32, 0; n = 5, t = 2: 384, 192, 64, 0, 0.
        Raises: ConfigError (n, t), FrameError / SessionAbortedError from the channel."""
        sch = s.scheme
        if not isinstance(sch, ShamirShares):
            raise ParameterError("PRSS needs the Shamir scheme")
        F = s.domain
        if not isinstance(F, PrimeField):
            raise ParameterError(f"PRSS needs a prime field, got {F}")
        n, t, me = s.n, sch.t, s.pid
        check_params(n, t)
        keys: dict[tuple[int, ...], bytes] = {}
        out: dict[int, list[bytes]] = {j: [] for j in range(n) if j != me}
        expect: dict[int, int] = {j: 0 for j in range(n) if j != me}
        for A in prss_sets(n, t):
            if me not in A:
                continue
            if A[0] == me:
                keys[A] = s.rng.bytes(KEY_BYTES)
                for j in A[1:]:
                    out[j].append(keys[A])
            else:
                expect[A[0]] += 1
        tag = s.tag("prss-keys")
        for j, ks in out.items():
            if ks:
                await s.channel.send(j, tag, np.frombuffer(b"".join(ks), dtype=np.uint8))
        got: dict[int, bytes] = {}
        for j, k in expect.items():
            if k:
                arr = await s.channel.recv_array(j, tag, dtype=np.uint8, shape=(k * KEY_BYTES,))
                got[j] = arr.tobytes()
        s.stats.rounds += 1
        taken = {j: 0 for j in got}
        for A in prss_sets(n, t):
            if me in A and A[0] != me:
                j = A[0]
                keys[A] = got[j][taken[j] * KEY_BYTES : (taken[j] + 1) * KEY_BYTES]
                taken[j] += 1
        return cls(F, n, t, me, sch.xs, keys)

    # -- streams -------------------------------------------------------------------------
    def _streams(self, label: str) -> list[CryptoRNG]:
        """One fresh generator per own set for the next call (the same at every member)."""
        c = self._calls
        self._calls += 1
        return [CryptoRNG(derive_key(self.keys[A], "prss", label, c)) for A in self.sets]

    # -- outputs (this party's shares, flat arrays of length count) -----------------------
    def randoms(self, count: int) -> np.ndarray:
        """Shares of `count` pseudo-random elements, degree t."""
        F = self.F
        vals = [F.random(g, (count,)) for g in self._streams("rand")]
        return F.lincomb(self.c_rand, vals)

    def zeros(self, count: int) -> np.ndarray:
        """Shares of `count` zeros, degree 2t, pseudo-random among such sharings."""
        F, t = self.F, self.t
        coeffs, vals = [], []
        for g, cz in zip(self._streams("zero"), self.c_zero, strict=True):
            r = F.random(g, (t, count))
            for k in range(t):
                coeffs.append(cz[k])
                vals.append(r[k])
        return F.lincomb(coeffs, vals)

    def double(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """([r]_t, [r]_2t) for `count` pseudo-random r: [r]_2t = [r]_t + [0]_2t."""
        rt = self.randoms(count)
        return rt, self.F.add(rt, self.zeros(count))

    def ints(self, count: int, w: int) -> np.ndarray:
        """Degree-t shares of r = sum over all C(n, t) sets A of psi_A, psi_A uniform in
        [0, 2^w) (so 0 <= r < C(n, t) 2^w). Needs C(n, t) 2^w < p."""
        F = self.F
        if not 1 <= w <= 128 or self.n_sets << w >= F.modulus:
            raise ParameterError(f"PRSS ints of {w} bits do not fit {F} with {self.n_sets} key sets")
        vals = [field_ints(F, *_uniform_ints(g, (count,), w)) for g in self._streams(f"int{w}")]
        return F.lincomb(self.c_rand, vals)

    def bool_triples(
        self, count: int, k: int = 1, *, zero_mask: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """XOR shares among all n parties of boolean (AND) triples on 64-bit words: a of
        (count,), b and c = a & b of (k, count), with NO communication.

        The keys define replicated (CNF) sharings [Ito-Saito-Nishizeki 1987; Maurer,
        "Secure multi-party computation made simple", DAM 2006]: a = XOR_A a_A, b = XOR_B b_B
        with a_A, b_A expanded from k_A. Since |A| + |B| = 2(n - t) > n, every A and B
        meet, so a & b = XOR_{A,B} a_A & b_B is a sum of terms each computable by a party in
        A and B (term (A, B) by min(A & B)); each party's XOR share of a (b) is the XOR of
        the a_A (b_A) of the sets it leads. The product's terms are then re-randomised by
        an XOR zero-sharing from the same keys (for each set, members 1..s-1 take fresh
        words r_j, the last their XOR), so that the honest parties' shares of c are uniform
        given c and the corrupt parties' view: the 3-party case is Araki, Furukawa,
        Lindell, Nof, Ohara, "High-throughput semi-honest secure three-party computation
        with an honest majority", CCS 2016, sec. 2.2 (z_i = x_i y_i + x_i y_(i+1) +
        x_(i+1) y_i + alpha_i), before its resharing round, which a triple does not need.
        `zero_mask=False` leaves the terms unmasked: INSECURE, for the tests' broken
        variant only.
        Cost per a-word: (1 + k + k (n - t - 1)) words expanded per own set, a few ANDs.
        Security: semi-honest, t < n/2, computational (AES as a PRF)."""
        me = self.pid
        s_ = self.n - self.t
        words: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for A, g in zip(self.sets, self._streams(f"bool{k}"), strict=True):
            w = g.uint64((1 + k + k * (s_ - 1), count))
            words[A] = (w[0], w[1 : 1 + k], w[1 + k :].reshape(s_ - 1, k, count))
        a = np.zeros(count, dtype=_U64)
        b = np.zeros((k, count), dtype=_U64)
        c = np.zeros((k, count), dtype=_U64)
        for A, (aA, bA, zA) in words.items():
            if A[0] == me:
                a ^= aA
                b ^= bA
            if zero_mask:
                j = A.index(me)
                if j < s_ - 1:
                    c ^= zA[j]
                else:
                    c ^= np.bitwise_xor.reduce(zA, axis=0)
            for B, (_, bB, _) in words.items():
                if min(set(A) & set(B)) == me:
                    c ^= aA[None, :] & bB
        return a, b, c

    def set_values(self, count: int, w: int) -> list[tuple[tuple[int, ...], np.ndarray]]:
        """The raw psi_A of the next `ints`-like call, for tests: [(A, uniform ints)]."""
        return [(A, _uniform_ints(g, (count,), w)[0]) for A, g in zip(self.sets, self._streams(f"int{w}"), strict=True)]


def check_params(n: int, t: int) -> None:
    if not (0 <= t and 2 * t < n):
        raise ParameterError(f"PRSS needs 0 <= t < n/2, got n={n}, t={t}")
    if len(prss_sets(n, t)) > MAX_SETS:
        raise ParameterError(f"PRSS with n={n}, t={t} needs {len(prss_sets(n, t))} keys per output (> {MAX_SETS})")
