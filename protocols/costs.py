"""The cost table: exact rounds and bytes of the protocols, as pure functions of the sizes.

One place for the numbers that the protocols' docstrings state (their Rounds and Bytes lines
cite these functions and the examples below are run as doctests), that the tests assert
against `Stats` (with literal spot checks in tests/protocols/test_costs.py, so a wrong table
is caught), and that `smpc bench` prints next to its measurements (mpc/bench/costmodel.py).

Conventions: N elements, n parties, e bytes per element (domain.elem_bytes: 8 on Z_2^64 and
GF(2^61-1), 16 on GF(2^127-1)). `Cost.bytes_per_party` counts what ONE party sends to all
its peers together; the `*_per_peer` helpers count what it sends to each peer. Rounds are
communication rounds on the critical path (Stats counts an opening batch as one round).

Comparison backends (protocols.comparison.backend; chosen from what the source supplies):
"ring3" (Z_2^64 with ltz_tuples: the dealers), "edabits" (Z_2^64 from the OT source, or
GF(p) with edaBits: the trusted dealer, dn07), "field_bits" (GF(p) from shared random bits:
the dealer node over a field).

    >>> mul(64, 3, 8)
    Cost(rounds=1, bytes_per_party=2048)
    >>> ltz(64, 3, 8, "ring3")
    Cost(rounds=3, bytes_per_party=5120)
    >>> ltz(64, 3, 8, "edabits")          # Z_2^64 from edaBits: 8 + 189/8 bytes per value
    Cost(rounds=8, bytes_per_party=4048)
    >>> ltz(64, 3, 16, "field_bits")      # GF(2^127-1), l = 64: 251 elements per value
    Cost(rounds=7, bytes_per_party=514048)
    >>> eda_per_peer("eqz", 32, 64, 16), field_bits_per_element("ltz", 33)
    ((7, 1528), (6, 123))
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols import bitwise

#: the comparison backends, by the name protocols.comparison.backend gives them
BACKENDS = ("ring3", "edabits", "field_bits")
#: bytes per element of the 3-round Z_2^64 comparison (ltz_tuples): one masked word and the
#: packed level-2 and level-3 words; ltz_mul adds the opened y - rho
RING3_LTZ_BYTES, RING3_LTZ_MUL_BYTES = 40, 48


@dataclass(frozen=True)
class Cost:
    """Rounds and bytes one party sends in total (to all peers)."""

    rounds: int
    bytes_per_party: int


# -- arithmetic ---------------------------------------------------------------------------
def open_(N: int, n: int, e: int) -> Cost:
    """core.open: every party sends its N shares to every peer."""
    return Cost(1, (n - 1) * N * e)


def input_(N: int, n: int, e: int) -> Cost:
    """core.input by one owner: an 8-byte shape header and the N shares to each peer (counted
    for the owner)."""
    return Cost(1, (n - 1) * (8 + N * e))


def typed_input(N: int, n: int, e: int, ndim: int = 1) -> Cost:
    """secure_types.input (`s.input`) by one owner: core.input (8*ndim header bytes and the N
    shares) plus the 8-byte type word, to each peer, in the same round (counted for the owner).

    >>> typed_input(6, 3, 16, ndim=2)
    Cost(rounds=1, bytes_per_party=240)
    """
    return Cost(1, (n - 1) * (8 + 8 * ndim + N * e))


def mul(N: int, n: int, e: int) -> Cost:
    """beaver.mul (and square: one opening of 2N or N elements, see its docstring): d and e
    opened in one batch."""
    return Cost(1, 2 * (n - 1) * N * e)


def matmul(x_size: int, y_size: int, n: int, e: int) -> Cost:
    """beaver.matmul of X (x_size elements) and Y (y_size elements): X - A and Y - B opened."""
    return Cost(1, (n - 1) * (x_size + y_size) * e)


def trunc(N: int, n: int, e: int) -> Cost:
    """truncation.trunc "msb" (Z_2^64) and "cs" (GF(p)): one opening of the masked value."""
    return Cost(1, (n - 1) * N * e)


def fixed_mul(N: int, n: int, e: int) -> Cost:
    """fixed.mul: the Beaver opening, then the truncation's."""
    return Cost(2, 3 * (n - 1) * N * e)


def sub_trunc_matmul(k: int, d: int, n: int, e: int, *, fused: bool) -> Cost:
    """truncation.sub_trunc_matmul for x (k, d), y (d,): the same words in 1 round with
    matrix_trunc_triples (fused), in 2 (trunc, then the product) without."""
    return Cost(1 if fused else 2, (n - 1) * (k * d + 2 * d) * e)


# -- comparison ---------------------------------------------------------------------------
def eda_per_peer(op: str, ell: int, N: int, e: int) -> tuple[int, int]:
    """(rounds, bytes each party sends to each peer) of `ltz` ("ltz") or `eqz` ("eqz") on N
    values from edaBits with value width l = ell (Z_2^64: ell = 64, e = 8): one opening of N
    elements, the boolean circuit over m positions (ltz: m = l - 1, eqz: m = l;
    bitwise.opened_words counts its words), one daBit conversion. Rounds 2 + ceil(log2 m).
    `ltz_mul` with a shared y adds 2*N*e to the first message and no round."""
    if op not in ("ltz", "eqz"):
        raise ValueError(f"eda costs: op must be 'ltz' or 'eqz', got {op!r}")
    m = ell - 1 if op == "ltz" else ell
    words = bitwise.opened_words("lt" if op == "ltz" else "eq", m, N)
    return 2 + bitwise.levels(m), N * e + 8 * words


def field_bits_per_element(op: str, ell: int) -> tuple[int, int]:
    """(rounds, field elements sent to each peer per compared element) of the GF(p) `ltz`
    ("ltz") or `eqz` ("eqz") from random bits with l = ell [CdH10]. One opening, then per
    level of the prefix circuit (width w -> ceil(w/2), an odd width padded with the neutral
    element at the top) one Beaver round of 2 elements per product: ltz on m = l - 1
    positions, 2*ceil(w/2) products per level while w > 2 and 1 at w = 2; eqz on l
    positions, ceil(w/2) products per level.
    l = 64: ltz (7, 251), eqz (7, 127); l = 33: ltz (6, 123); l = 17: ltz (5, 59)."""
    if op not in ("ltz", "eqz"):
        raise ValueError(f"field costs: op must be 'ltz' or 'eqz', got {op!r}")
    rounds, elems = 1, 1
    w = ell - 1 if op == "ltz" else ell
    while w > 1:
        h = (w + 1) // 2
        prods = 2 * h if (op == "ltz" and w > 2) else h
        rounds += 1
        elems += 2 * prods
        w = h
    return rounds, elems


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"comparison backend must be one of {BACKENDS}, got {backend!r}")


def ltz(N: int, n: int, e: int, backend: str, ell: int = 64) -> Cost:
    """comparison.ltz (and lt, gt) on N values. ring3: 3 rounds, 40 bytes per value and peer;
    edabits: `eda_per_peer("ltz", ell, N, e)` (Z_2^64: ell = 64, e = 8); field_bits:
    `field_bits_per_element("ltz", ell)` elements of e bytes per value."""
    _check_backend(backend)
    if backend == "ring3":
        return Cost(3, (n - 1) * N * RING3_LTZ_BYTES)
    if backend == "edabits":
        rounds, per_peer = eda_per_peer("ltz", ell, N, e)
        return Cost(rounds, (n - 1) * per_peer)
    rounds, elems = field_bits_per_element("ltz", ell)
    return Cost(rounds, (n - 1) * N * elems * e)


def ltz_mul(N: int, n: int, e: int, backend: str, ell: int = 64) -> Cost:
    """comparison.ltz_mul with a shared factor (and relu, absolute, maximum, minimum; clip on
    2N). ring3: 3 rounds, 48 bytes per value and peer; edabits: ltz's rounds, its bytes plus
    the product's 2*N*e (in the first message); field_bits: ltz, then one Beaver round."""
    _check_backend(backend)
    if backend == "ring3":
        return Cost(3, (n - 1) * N * RING3_LTZ_MUL_BYTES)
    c = ltz(N, n, e, backend, ell)
    return Cost(c.rounds + (backend == "field_bits"), c.bytes_per_party + mul(N, n, e).bytes_per_party)


def eqz(N: int, n: int, e: int, backend: str, ell: int = 64) -> Cost:
    """comparison.eqz (and eq): from edaBits on Z_2^64 whatever the ltz backend (ring3 and
    edabits: `eda_per_peer("eqz", ell, N, e)`); field_bits: `field_bits_per_element("eqz",
    ell)` elements per value."""
    _check_backend(backend)
    if backend == "field_bits":
        rounds, elems = field_bits_per_element("eqz", ell)
        return Cost(rounds, (n - 1) * N * elems * e)
    rounds, per_peer = eda_per_peer("eqz", ell, N, e)
    return Cost(rounds, (n - 1) * per_peer)


def select(N: int, n: int, e: int) -> Cost:
    """comparison.select with a secret branch: one Beaver product."""
    return mul(N, n, e)


# -- nonlinear ------------------------------------------------------------------------------
def sigmoid(N: int, n: int, e: int, backend: str) -> Cost:
    """nonlinear.sigmoid: 3 comparisons with their products by x (one ltz_mul on 3N); then
    30 rounds of products: the degree-6 polynomial (5 fixed products = 15 units of
    (n-1)*N*e, its truncation 1), 4 squarings (8), mul_public (1), 3 Newton steps (18),
    trunc (1) and the final product (2): 46 units. Rounds 33 (ring3) / 38 (edabits)."""
    c = ltz_mul(3 * N, n, e, backend)
    return Cost(c.rounds + 30, c.bytes_per_party + 46 * (n - 1) * N * e)


def sigmoid_piecewise(N: int, n: int, e: int, backend: str) -> Cost:
    """nonlinear.sigmoid_piecewise: one clip (both comparisons and products in one ltz_mul
    on 2N)."""
    return ltz_mul(2 * N, n, e, backend)


def reciprocal(N: int, n: int, e: int, backend: str) -> Cost:
    """nonlinear.reciprocal: 25 comparisons (every power of two of [2^-8, 2^16]) in one
    batch; then the clipping product (4 units), x*M and its truncation (3), mul_public (1),
    3 Newton steps (18), w*M and its truncation (3): 29 units; rounds ltz + 18."""
    c = ltz(25 * N, n, e, backend)
    return Cost(c.rounds + 18, c.bytes_per_party + 29 * (n - 1) * N * e)
