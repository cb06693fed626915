"""Preprocessing for SPDZ2k: MACed (authenticated) triples, random values and input masks
over Z_2^128 (k = s = 64), every item as this party's shares ([v], [alpha * v]).

Kinds: triples, randoms, input_masks, bits (MACed uniform bits, for truncation and
comparison masks), matrix_triples and input_bits (owner-known MACed bits: range-checked inputs). `Spdz2kDealer` is the in-process trusted dealer: INSECURE, for tests and benchmarks only.
It knows the global MAC key alpha = sum_i alpha_i (each party registers its own alpha_i,
drawn from that party's CSPRNG, in process: alpha_i never goes over a channel), and every
value it deals; whoever controls it can forge MACs. The dealer-free source (vOLE MACs and
OT triples with the SPDZ2k/MASCOT sacrifice) is protocols.malicious.spdz2k_ot.Spdz2kOT,
which hands out the same items in the same formats.

All parties of one run share one dealer; the k-th request of every party must be for the
same kind and shape (checked: PreprocessingMismatch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from protocols.arith import ring128 as R
from protocols.errors import ParameterError, PreprocessingMismatch
from protocols.prg import CryptoRNG, derive_key

Shape = tuple[int, ...]


class Spdz2kDealer:
    """Deals MACed items to the n parties of one in-process run (see the module docstring)."""

    name = "trusted_dealer"

    def __init__(self, n: int, rng: CryptoRNG):
        self.n, self.rng = n, rng
        self.alphas: dict[int, np.ndarray] = {}
        self._items: list[tuple[tuple[Any, ...], Sequence[tuple[Any, ...]] | None]] = []
        self._taken: list[int] = []
        self._next = [0] * n
        self.only: int | None = None  # shared-seed copy: deals to this party only

    @classmethod
    def shared_seed(cls, n: int, seed: bytes, pid: int) -> Spdz2kDealer:
        """Party pid's copy of a dealer every process derives from one shared seed (for
        run_processes; as insecure as InsecureSharedSeedDealer): the alpha_i of every party
        come from the seed too, and each copy deals only to pid, in the same order."""
        d = cls(n, CryptoRNG(derive_key(seed, "spdz2k-dealer")))
        for j in range(n):
            a = R.zeros(())
            a[0] = d.rng.uint64(())
            d.alphas[j] = a
        d.only = pid
        return d

    def register(self, pid: int, alpha_i: np.ndarray) -> Spdz2kDealerView:
        """Party pid's view; the dealer learns alpha_i (in process: this is the insecurity)."""
        if pid in self.alphas:
            raise ParameterError(f"party {pid} registered twice with the SPDZ2k dealer")
        self.alphas[pid] = alpha_i
        return Spdz2kDealerView(self, pid)

    @property
    def alpha(self) -> np.ndarray:
        if len(self.alphas) != self.n:
            raise ParameterError(f"SPDZ2k dealer: {len(self.alphas)} of {self.n} parties registered")
        out = R.zeros(())
        for a in self.alphas.values():
            out = R.add(out, a)
        return out

    def _share(self, v: np.ndarray) -> list[np.ndarray]:
        """n additive shares of v (shape (*S, 2)) over Z_2^128."""
        rest = [R.random(self.rng, v.shape[:-1]) for _ in range(self.n - 1)]
        first = v
        for r in rest:
            first = R.sub(first, r)
        return [first, *rest]

    def _auth(self, *vals: np.ndarray) -> list[tuple[np.ndarray, ...]]:
        """Per party: (v1 share, MAC1 share, v2 share, MAC2 share, ...)."""
        alpha = self.alpha
        per = []
        for v in vals:
            per.append(self._share(v))
            per.append(self._share(R.mul(v, alpha)))
        return [tuple(p[i] for p in per) for i in range(self.n)]

    def take(self, pid: int, key: tuple[Any, ...], make: Callable[[], Sequence[tuple[Any, ...]]]) -> Any:
        if self.only is not None:
            return make()[pid]
        k = self._next[pid]
        if k < len(self._items):
            want, shares = self._items[k]
            if want != key:
                raise PreprocessingMismatch(f"party {pid} asked for {key} as item {k}, another party for {want}")
        else:
            self._items.append((key, make()))
            self._taken.append(0)
            shares = self._items[k][1]
        self._next[pid] = k + 1
        assert shares is not None
        mine = shares[pid]
        self._taken[k] += 1
        if self._taken[k] == self.n:
            self._items[k] = (key, None)
        return mine


class Spdz2kDealerView:
    """One party's handle on the dealer (the interface SPDZ2k's online phase uses)."""

    name = "trusted_dealer"

    def __init__(self, dealer: Spdz2kDealer, pid: int):
        self.d, self.pid = dealer, pid

    async def triples(self, shape: Shape) -> tuple[np.ndarray, ...]:
        """(a, [alpha a], b, [alpha b], c, [alpha c]) shares with c = a * b mod 2^128."""
        shape = tuple(shape)

        def make() -> list[tuple[np.ndarray, ...]]:
            a, b = R.random(self.d.rng, shape), R.random(self.d.rng, shape)
            return self.d._auth(a, b, R.mul(a, b))

        return self.d.take(self.pid, ("triples", shape), make)

    async def randoms(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        """([r], [alpha r]) for a uniform r in Z_2^128 nobody knows (but the dealer)."""
        shape = tuple(shape)
        return self.d.take(self.pid, ("randoms", shape), lambda: self.d._auth(R.random(self.d.rng, shape)))

    async def bits(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        """([b], [alpha b]) for a uniform bit b in {0, 1} nobody knows (but the dealer): the
        masks of truncation and comparison (protocols.malicious.spdz2k_fixed)."""
        shape = tuple(shape)

        def make() -> list[tuple[np.ndarray, ...]]:
            return self.d._auth(R.from_u64(self.d.rng.bits(shape).astype(np.uint64)))

        return self.d.take(self.pid, ("bits", shape), make)

    async def matrix_triples(self, dims: Shape) -> tuple[np.ndarray, ...]:
        """dims = (m, k, n): (A, [alpha A], B, [alpha B], C, [alpha C]) shares with A (m, k),
        B (k, n) uniform in Z_2^128 and C = A @ B mod 2^128 (for spdz2k_matmul.matmul)."""
        m, k, n = (int(v) for v in dims)

        def make() -> list[tuple[np.ndarray, ...]]:
            a, b = R.random(self.d.rng, (m, k)), R.random(self.d.rng, (k, n))
            return self.d._auth(a, b, R.matmul(a, b))

        return self.d.take(self.pid, ("matrix_triples", (m, k, n)), make)

    async def input_bits(self, shape: Shape, owner: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """([r], [alpha r], r at the owner / None elsewhere) for uniform bits r the owner
        knows: the masks of the range-checked input (spdz2k_matmul.input_checked)."""
        shape = tuple(shape)

        def make() -> list[tuple[np.ndarray | None, ...]]:
            r = self.d.rng.bits(shape).astype(np.uint64)
            return [(*sh, r if i == owner else None) for i, sh in enumerate(self.d._auth(R.from_u64(r)))]

        return self.d.take(self.pid, ("input_bits", shape, owner), make)

    async def input_masks(self, shape: Shape, owner: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """([r], [alpha r], r at the owner / None elsewhere): the owner's MACed mask."""
        shape = tuple(shape)

        def make() -> list[tuple[np.ndarray | None, ...]]:
            r = R.random(self.d.rng, shape)
            return [(*sh, r if i == owner else None) for i, sh in enumerate(self.d._auth(r))]

        return self.d.take(self.pid, ("input_masks", shape, owner), make)
