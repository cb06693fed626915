"""An in-process trusted dealer: INSECURE, for tests, notebooks and benchmarks only.

It generates every triple, bit and mask in the clear and hands each party its shares, so it
knows all of them: whoever controls it learns every value the protocols mask. It exists
because it is the fastest way to exercise the online phase; real deployments use a dealer
node under a non-collusion assumption or a dealer-free source (see the preprocessing issue).
The node daemon refuses it unless run with --insecure.

All parties of one `run_local` share one dealer object. The k-th request of every party
must be for the same kind and shapes; the dealer generates the item on the first request,
keeps the other parties' shares until they ask, and forgets the item once all have it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

import numpy as np

from protocols.arith.domain import Domain
from protocols.errors import PreprocessingExhausted, PreprocessingMismatch
from protocols.preprocessing.base import (
    KINDS,
    RING64_KINDS,
    SHAMIR_KINDS,
    Preprocessing,
    Shape,
    mtt_request,
)
from protocols.prg import CryptoRNG
from protocols.sharing.schemes import Scheme, ShamirShares

#: one party's shares of one dealt item (a fixed-length tuple of share arrays)
_Item = TypeVar("_Item", bound=tuple[np.ndarray, ...])


class InsecureTrustedDealer:
    """Generates correlated randomness for all n parties of one in-process run.

    `limit`: total number of elements (summed over all items) it will hand out before it
    raises PreprocessingExhausted; None for no limit.
    """

    name = "trusted_dealer"

    def __init__(self, scheme: Scheme, rng: CryptoRNG, *, limit: int | None = None) -> None:
        self.scheme, self.domain, self.n = scheme, scheme.domain, scheme.n
        self.rng = rng
        self.limit = limit
        self.used = 0
        self._items: list[tuple[tuple[object, ...], list[tuple[np.ndarray, ...]] | None]] = []
        self._taken: list[int] = []  # parties that took item k
        self._next = [0] * self.n  # next item index per party

    def for_party(self, pid: int) -> Preprocessing:
        return _DealerView(self, pid)

    def _share_all(self, values: tuple[np.ndarray, ...]) -> list[tuple[np.ndarray, ...]]:
        # numpy hands back scalars for 0-d results (e.g. r >> f): share arrays, always
        per_value = [self.scheme.share(self.rng, np.asarray(v)) for v in values]
        return [tuple(sh[p] for sh in per_value) for p in range(self.n)]

    def take(self, pid: int, key: tuple[object, ...], size: int, make: Callable[[], _Item]) -> _Item:
        """Party pid's shares of the next item: generated (values from make(), shared with
        the scheme) on the first party's request, checked against `key` on the others'."""
        # _share_all keeps the tuple's length: party pid's shares have make()'s type
        return cast(_Item, self.take_parts(pid, key, size, lambda: self._share_all(make())))

    def take_parts(
        self, pid: int, key: tuple[object, ...], size: int, make: Callable[[], list[_Item]]
    ) -> _Item:
        """As `take`, for items whose per-party shares `make` builds itself (mixed arithmetic
        and XOR sharings): make() returns one tuple of arrays per party."""
        k = self._next[pid]
        if k < len(self._items):
            want, shares = self._items[k]
            if want != key:
                raise PreprocessingMismatch(
                    f"party {pid} asked for {key} as item {k}, another party for {want}"
                )
        else:
            if self.limit is not None and self.used + size > self.limit:
                raise PreprocessingExhausted(
                    f"{self.name}: {key[0]} of shape {key[1:]} needs {size} elements, "
                    f"{self.limit - self.used} of {self.limit} left"
                )
            self.used += size
            self._items.append((key, list(make())))
            self._taken.append(0)
            shares = self._items[k][1]
        self._next[pid] = k + 1
        assert shares is not None  # forgotten only once every party took it
        mine = shares[pid]
        self._taken[k] += 1
        if self._taken[k] == self.n:
            self._items[k] = (key, None)
        # the k-th item is the one every party asked for under `key`: make()'s item type
        return cast(_Item, mine)

    def xor_share(self, v: np.ndarray) -> list[np.ndarray]:
        """n XOR shares of a uint64 array: n - 1 uniform words, the first fixes the XOR."""
        rest = [self.rng.uint64(v.shape) for _ in range(self.n - 1)]
        first = v.copy()
        for r in rest:
            first ^= r
        return [first, *rest]


class _DealerView(Preprocessing):
    name = "trusted_dealer"

    def __init__(self, dealer: InsecureTrustedDealer, pid: int) -> None:
        self.d, self.pid = dealer, pid

    def _rand(self, shape: Shape) -> np.ndarray:
        return self.d.domain.random(self.d.rng, shape)

    def supports(self, kind: str) -> bool:
        """Every kind on Z_2^64 with additive sharing; on GF(p) every kind but the Z_2^64
        ones (trunc_triples, ltz_tuples, matrix_trunc_triples), the mixed edaBits and daBits
        for any scheme; the Shamir-only double sharings for Shamir with n >= 2t + 1."""
        if kind in SHAMIR_KINDS:
            sch = self.d.scheme
            return isinstance(sch, ShamirShares) and 2 * sch.t < sch.n
        if kind not in KINDS:
            raise ValueError(f"unknown preprocessing kind {kind!r}")
        D = self.d.domain
        ring64 = not D.is_field and D.modulus == 1 << 64
        if kind == "ltz_tuples":
            return ring64 and self.d.scheme.kind == "additive"
        if kind in RING64_KINDS:
            return ring64
        if kind in ("edabits", "dabits"):
            return D.is_field or (ring64 and self.d.scheme.kind == "additive")
        return True

    async def triples(self, shape: Shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        shape = tuple(shape)
        D = self.d.domain

        def make() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            a, b = self._rand(shape), self._rand(shape)
            return a, b, D.mul(a, b)

        return self.d.take(self.pid, ("triples", shape), 3 * _size(shape), make)

    async def matrix_triples(self, x_shape: Shape, y_shape: Shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x_shape, y_shape = tuple(x_shape), tuple(y_shape)
        D = self.d.domain

        def make() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            a, b = self._rand(x_shape), self._rand(y_shape)
            return a, b, D.matmul(a, b)

        size = _size(x_shape) + _size(y_shape)
        return self.d.take(self.pid, ("matrix_triples", x_shape, y_shape), size, make)

    async def square_pairs(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        shape = tuple(shape)
        D = self.d.domain

        def make() -> tuple[np.ndarray, np.ndarray]:
            a = self._rand(shape)
            return a, D.mul(a, a)

        return self.d.take(self.pid, ("square_pairs", shape), 2 * _size(shape), make)

    async def bits(self, shape: Shape) -> np.ndarray:
        shape = tuple(shape)
        D = self.d.domain

        def make() -> tuple[np.ndarray]:
            return (D.from_int(self.d.rng.bits(shape).astype(np.int64)),)

        return self.d.take(self.pid, ("bits", shape), _size(shape), make)[0]

    async def randoms(self, shape: Shape) -> np.ndarray:
        shape = tuple(shape)
        return self.d.take(self.pid, ("randoms", shape), _size(shape), lambda: (self._rand(shape),))[0]

    async def double_randoms(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        """(degree-t, degree-2t) Shamir shares of one uniform r (Shamir schemes only)."""
        shape = tuple(shape)
        sch = self.d.scheme
        if not isinstance(sch, ShamirShares) or 2 * sch.t >= sch.n:
            raise self._unsupported("double sharings (Shamir with n >= 2t + 1)", shape)
        from protocols.sharing.shamir import ShamirScheme

        wide = ShamirScheme(sch.field, sch.n, 2 * sch.t, sch.xs, multiply=False)

        def make() -> list[tuple[np.ndarray, np.ndarray]]:
            r = self._rand(shape)
            return list(zip(sch.share(self.d.rng, r), wide.share(self.d.rng, r), strict=True))

        return self.d.take_parts(self.pid, ("double_randoms", shape), 2 * _size(shape), make)

    # -- truncation and comparison kinds -------------------------------------------------
    def _need(self, kind: str, what: str, shape: object) -> None:
        """PreprocessingUnsupported (nothing dealt) unless `supports(kind)`."""
        if not self.supports(kind):
            raise self._unsupported(f"{what} over {self.d.domain} ({self.d.scheme.kind} sharing)", shape)

    async def trunc_triples(self, shape: Shape, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        shape = tuple(shape)
        self._need("trunc_triples", "truncation triples", shape)
        if not 0 < f < 63:
            raise PreprocessingExhausted(f"{self.name}: truncation triples need 0 < f < 63, got {f}")

        def make() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            r = self.d.rng.uint64(shape)
            low = r & np.uint64((1 << 63) - 1)
            return r, low >> np.uint64(f), r >> np.uint64(63)

        return self.d.take(self.pid, ("trunc_triples", shape, f), 3 * _size(shape), make)

    def _bounded(self, shape: Shape, bits: int) -> np.ndarray:
        """Uniform integers in [0, 2^bits) as domain elements (limbs for bits > 64)."""
        D = self.d.domain
        lo = self.d.rng.uint64(shape)
        if bits < 64:
            lo &= np.uint64((1 << bits) - 1)
        if bits <= 64:
            hi = None
        else:
            hi = self.d.rng.uint64(shape) & np.uint64((1 << (bits - 64)) - 1)
        return _from_limbs(D, lo, hi)

    async def bounded_randoms(self, shape: Shape, bits: int) -> np.ndarray:
        shape = tuple(shape)
        D = self.d.domain
        if not 0 < bits < (D.modulus - 1).bit_length() or bits > 128:
            raise PreprocessingExhausted(f"{self.name}: cannot supply {bits}-bit randoms in {D}")
        return self.d.take(
            self.pid, ("bounded_randoms", shape, bits), _size(shape), lambda: (self._bounded(shape, bits),)
        )[0]

    async def trunc_pairs(self, shape: Shape, f: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
        shape = tuple(shape)
        D = self.d.domain
        if not 0 < f < bits < (D.modulus - 1).bit_length() or bits > 128:
            raise PreprocessingExhausted(f"{self.name}: cannot supply {bits}-bit truncation pairs in {D}")

        def make() -> tuple[np.ndarray, np.ndarray]:
            lo = self.d.rng.uint64(shape)
            if bits < 64:
                lo &= np.uint64((1 << bits) - 1)
            hi = None
            if bits > 64:
                hi = self.d.rng.uint64(shape) & np.uint64((1 << (bits - 64)) - 1)
            if hi is None:
                return _from_limbs(D, lo, None), _from_limbs(D, lo >> np.uint64(f), None)
            slo = (lo >> np.uint64(f)) | (hi << np.uint64(64 - f))
            return _from_limbs(D, lo, hi), _from_limbs(D, slo, hi >> np.uint64(f))

        return self.d.take(self.pid, ("trunc_pairs", shape, f, bits), 2 * _size(shape), make)

    async def edabits(self, shape: Shape, bits: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """(arithmetic share of r, XOR share of r's bits in one word) for r uniform in
        [0, 2^bits): any bits in 1..64 on Z_2^64 (additive), 2^bits < p on GF(p) (any scheme)."""
        shape, bits = tuple(shape), int(bits)
        D = self.d.domain
        self._need("edabits", "edaBits", shape)
        self._need_bits("edaBits", bits)

        def make() -> list[tuple[np.ndarray, np.ndarray]]:
            r = self.d.rng.uint64(shape)
            if bits < 64:
                r &= np.uint64((1 << bits) - 1)
            arith = self.d.scheme.share(self.d.rng, r if not D.is_field else D.from_int(r))
            return list(zip(arith, self.d.xor_share(r), strict=True))

        key = ("edabits", shape) if bits == 64 else ("edabits", shape, bits)
        return self.d.take_parts(self.pid, key, 2 * _size(shape), make)

    async def dabits(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        """(arithmetic share of b, XOR share of b in bit 0 of a word) for uniform bits b."""
        shape = tuple(shape)
        D = self.d.domain
        self._need("dabits", "daBits", shape)

        def make() -> list[tuple[np.ndarray, np.ndarray]]:
            b = self.d.rng.bits(shape)
            arith = self.d.scheme.share(self.d.rng, b if not D.is_field else D.from_int(b))
            return list(zip(arith, self.d.xor_share(b), strict=True))

        return self.d.take_parts(self.pid, ("dabits", shape), 2 * _size(shape), make)

    async def bool_triples(self, shape: Shape, k: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """XOR shares (among all n parties, whatever the arithmetic scheme) of (a, b, a & b)
        on 64-bit words, a of `shape`, b and c of (k, *shape)."""
        shape = tuple(shape)

        def make() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
            a = self.d.rng.uint64(shape)
            b = self.d.rng.uint64((k, *shape))
            c = a[None] & b
            parts = [self.d.xor_share(v) for v in (a, b, c)]
            return [(parts[0][i], parts[1][i], parts[2][i]) for i in range(self.d.n)]

        return self.d.take_parts(self.pid, ("bool_triples", shape, k), (1 + 2 * k) * _size(shape), make)

    def _need_bits(self, kind: str, bits: int) -> None:
        """Mixed arithmetic/XOR kinds: 1..64 bits, and room for them on GF(p)."""
        D = self.d.domain
        if not 1 <= bits <= 64 or (D.is_field and bits >= (D.modulus - 1).bit_length()):
            raise PreprocessingExhausted(f"{self.name}: no {bits}-bit {kind} in {D}")

    async def ltz_tuples(self, shape: Shape, mul: bool = False) -> tuple[np.ndarray, ...]:
        """Material of the 3-round ring comparison: protocols.comparison.ltz_tuple_values
        on uniform words, each value shared additively or by XOR as it says."""
        from protocols.comparison import ltz_tuple_values

        shape = tuple(shape)
        mul = bool(mul)
        self._need("ltz_tuples", "ltz tuples", shape)

        def make() -> list[tuple[np.ndarray, ...]]:
            words = [self.d.rng.uint64(shape) for _ in range(6 if mul else 5)]
            parts: list[list[np.ndarray]] = []
            for v, how in ltz_tuple_values(*words):
                parts.append(self.d.scheme.share(self.d.rng, v) if how == "a" else self.d.xor_share(v))
            return [tuple(p[i] for p in parts) for i in range(self.d.n)]

        return self.d.take_parts(self.pid, ("ltz_tuples", shape, mul), 64 * _size(shape), make)

    async def matrix_trunc_triples(self, x_shape: Shape, y_shape: Shape, f: int) -> tuple[np.ndarray, ...]:
        """(A, B, C = A @ B, r, r_hi = (r mod 2^63) >> f, r_msb = r >> 63, A @ r_hi,
        A * r_msb) for x_shape (k, d) @ y_shape (d,), as base.Preprocessing says."""
        x_shape, y_shape = tuple(x_shape), tuple(y_shape)
        self._need("matrix_trunc_triples", "matrix truncation triples", (x_shape, y_shape))
        x_shape, y_shape, f = mtt_request(self.name, x_shape, y_shape, f)
        D = self.d.domain

        def make() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
            a, b = self._rand(x_shape), self._rand(y_shape)
            r = self.d.rng.uint64(y_shape)
            r_hi = (r & np.uint64((1 << 63) - 1)) >> np.uint64(f)
            r_msb = r >> np.uint64(63)
            return a, b, D.matmul(a, b), r, r_hi, r_msb, D.matmul(a, r_hi), a * r_msb

        size = 2 * _size(x_shape) + 4 * _size(y_shape) + x_shape[0]
        return self.d.take(self.pid, ("matrix_trunc_triples", x_shape, y_shape, f), size, make)


def _from_limbs(D: Domain, lo: np.ndarray, hi: np.ndarray | None) -> np.ndarray:
    """The domain element lo + 2^64 * hi for limbs of a value below the modulus."""
    if hi is None:
        return D.from_int(lo)
    if D.dtype.names == ("lo", "hi"):
        out = np.empty(lo.shape, dtype=D.dtype)
        out["lo"], out["hi"] = lo, hi
        return out
    return D.from_int(lo.astype(object) + (hi.astype(object) << 64))


def _size(shape: Shape) -> int:
    return int(np.prod(shape, dtype=np.int64))
