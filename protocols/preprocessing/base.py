"""The Preprocessing interface: every kind of correlated randomness, handed out once.

All methods return this party's shares (domain arrays). Each item is handed out exactly
once. A source declares which kinds it supplies for its domain and scheme with
`supports(kind)`; protocols that have more than one path (comparison, truncation) choose
from that declaration, never by asking and catching an error. Asking for a kind the source
does not supply raises `PreprocessingUnsupported`; a source that runs out raises
`PreprocessingExhausted` naming the kind and shape it could not supply (both are errors
that end the job). Parties must request the same items in the same order (the protocols do
this by construction); sources that can tell raise `PreprocessingMismatch` otherwise.
"""

from __future__ import annotations

import abc

import numpy as np

from protocols.errors import PreprocessingUnsupported

Shape = tuple[int, ...]


def mtt_request(name: str, x_shape: Shape, y_shape: Shape, f: int | None = None,
                max_f: int = 63) -> tuple[Shape, Shape, int]:
    """Validate a `matrix_trunc_triples` request, as every source must: (k, d) @ (d,) and,
    when f is given, 0 < f < max_f (63 for Z_2^64). Returns (x_shape, y_shape, int f);
    raises PreprocessingExhausted naming the source otherwise."""
    from protocols.errors import PreprocessingExhausted

    x_shape, y_shape = tuple(x_shape), tuple(y_shape)
    if len(x_shape) != 2 or y_shape != x_shape[1:]:
        raise PreprocessingExhausted(f"{name}: matrix truncation triples need (k, d) @ (d,)")
    if f is None:
        return x_shape, y_shape, 0
    if isinstance(f, bool) or not isinstance(f, int | np.integer) or not 0 < f < max_f:
        raise PreprocessingExhausted(f"{name}: matrix truncation triples need 0 < f < {max_f}, got {f}")
    return x_shape, y_shape, int(f)


class Preprocessing(abc.ABC):  # noqa: B024 (every kind is optional)
    """One party's view of a source of correlated randomness."""

    #: the name used in configs and run_local(preprocessing=...)
    name: str = "abstract"

    def supports(self, kind: str) -> bool:
        """Whether this source supplies items of `kind` (a method name in KINDS) for its
        session's domain and scheme, for the parameters the protocols use. Pure and local (no
        communication, nothing consumed), the same answer on every party. A source that says
        True may still run out (PreprocessingExhausted) or fail; one that says False raises
        PreprocessingUnsupported when asked. Default: the kinds the class implements."""
        if kind not in KINDS and kind not in SHAMIR_KINDS:
            raise ValueError(f"unknown preprocessing kind {kind!r}")
        return getattr(type(self), kind) is not getattr(Preprocessing, kind)

    def _unsupported(self, kind: str, shape: object) -> PreprocessingUnsupported:
        return PreprocessingUnsupported(f"{self.name} does not supply {kind} (asked for {shape})")

    async def triples(self, shape: Shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Shares of (a, b, c) with a, b uniform and c = a * b elementwise, each of `shape`."""
        raise self._unsupported("triples", shape)

    async def matrix_triples(
        self, x_shape: Shape, y_shape: Shape
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Shares of (A, B, C) with A of x_shape, B of y_shape uniform and C = A @ B."""
        raise self._unsupported("matrix triples", (x_shape, y_shape))

    async def square_pairs(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        """Shares of (a, a * a) with a uniform."""
        raise self._unsupported("square pairs", shape)

    async def bits(self, shape: Shape) -> np.ndarray:
        """Shares of uniformly random bits b in {0, 1}."""
        raise self._unsupported("random bits", shape)

    async def randoms(self, shape: Shape) -> np.ndarray:
        """Shares of uniformly random domain elements."""
        raise self._unsupported("random values", shape)

    async def double_randoms(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        """Shamir only: shares of one uniform r as a degree-t and a degree-2t sharing (a
        "double sharing" [DN07]: degree reduction of a product, protocols.malicious)."""
        raise self._unsupported("double sharings", shape)

    async def trunc_pairs(self, shape: Shape, f: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
        """Shares of (r, r >> f) for truncation, with r of `bits` random bits (see
        protocols.truncation for the exact distribution each protocol needs)."""
        raise self._unsupported(f"truncation pairs (f={f}, bits={bits})", shape)

    # Kinds used by protocols/truncation.py and protocols/comparison/. The trusted dealer
    # supplies all of them on Z_2^64 (see its docstrings for the exact distributions);
    # other sources declare what they supply with `supports`.
    async def trunc_triples(self, shape: Shape, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Z_2^64 truncation material for the exact top-bit-corrected truncation."""
        raise self._unsupported(f"truncation triples (f={f})", shape)

    async def bounded_randoms(self, shape: Shape, bits: int) -> np.ndarray:
        """Shares of uniformly random integers of `bits` bits."""
        raise self._unsupported(f"{bits}-bit random values", shape)

    async def edabits(self, shape: Shape, bits: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Random values r uniform in [0, 2^bits) shared both arithmetically (the session's
        scheme and domain) and bit by bit in XOR shares among all n parties, packed in one
        uint64 word per element (bit i = bit i of r). Z_2^64 uses bits = 64; GF(p)
        comparisons ask for l bits (2^l < p)."""
        raise self._unsupported(f"{bits}-bit edaBits", shape)

    async def dabits(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        """Random bits shared both arithmetically and in XOR shares (bit 0 of a word)."""
        raise self._unsupported("daBits", shape)

    async def bool_triples(self, shape: Shape, k: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boolean (AND) triples on 64-bit words, XOR-shared among all n parties whatever
        the arithmetic scheme; `k` b-words per a-word."""
        raise self._unsupported(f"boolean triples (k={k})", shape)

    async def ltz_tuples(self, shape: Shape, mul: bool = False) -> tuple[np.ndarray, ...]:
        """Z_2^64 material for the 3-round comparison (protocols.comparison.ltz_tuple_values
        defines the correlation and the order of the arrays); `mul` adds a mask rho and its
        products for comparison.ltz_mul."""
        raise self._unsupported(f"ltz tuples (mul={mul})", shape)

    async def matrix_trunc_triples(
        self, x_shape: Shape, y_shape: Shape, f: int
    ) -> tuple[np.ndarray, ...]:
        """Z_2^64: a matrix triple (A, B, C = A @ B) for x_shape (k, d) @ y_shape (d,), the
        truncation mask of `trunc_triples(y_shape, f)` (r, r_hi, r_msb) and the products
        A @ r_hi (k,) and A * r_msb (k, d), row-broadcast: protocols.truncation.sub_trunc_matmul
        truncates y and multiplies by it in one round. Order: A, B, C, r, r_hi, r_msb,
        A @ r_hi, A * r_msb.
        GF(p) (the probabilistic truncation "cs", any scheme): the matrix triple, the pair
        (r, r_hi) of `trunc_pairs(y_shape, f, l + kappa)` (l = truncation.value_bits) and
        A @ r_hi (k,). Order: A, B, C, r, r_hi, A @ r_hi."""
        raise self._unsupported(f"matrix truncation triples (f={f})", (x_shape, y_shape))


#: every kind of item, by method name
KINDS = (
    "triples", "matrix_triples", "square_pairs", "bits", "randoms", "trunc_pairs",
    "trunc_triples", "bounded_randoms", "edabits", "dabits", "bool_triples",
    "ltz_tuples", "matrix_trunc_triples",
)
#: kinds the dealers supply only for Z_2^64 (the exact truncation's 2^63 split, the 3-round
#: comparison's packed words); matrix_trunc_triples also has a GF(p) form, which dn07 supplies
RING64_KINDS = frozenset({"trunc_triples", "ltz_tuples", "matrix_trunc_triples"})
#: kinds that exist for Shamir sharing only, outside KINDS (the additive sources, which
#: supply every kind of KINDS, never supply them): degree-t / degree-2t double sharings
SHAMIR_KINDS = ("double_randoms",)
