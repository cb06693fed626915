"""Boolean (XOR) shares of packed bit vectors among all n parties, and the two circuits the
comparisons build on: the carry-out of a comparison with a public value (BitLT) and an AND
tree (equality), both halving a packed vector per level, then the conversion of the result
bits to arithmetic shares with daBits.

XOR sharing is the same for every arithmetic scheme (additive or Shamir, ring or field):
each of the n parties holds a word, the value is their XOR, party 0 adds public constants.
It is secure against n - 1 semi-honest parties, so it never weakens a Shamir session's
threshold (t < n/2), but every party takes part in its openings.

Layout. A vector of L bits lives in ceil(L / 64) uint64 words, bit j at bit j % 64 of word
j // 64. A batch of N values of w bit positions each (w a power of two) is one vector of
N*w bits, value k at bits [k*w, (k+1)*w), LSB first. A level of a prefix circuit combines
the position pairs (2i, 2i+1) of every value; pairs never straddle values, so it takes the
even and the odd bits of the whole vector ("compaction", a fixed sequence of shifts and
masks per word) and leaves a vector of N*w/2 bits in the same layout. Only the positions
that feed the final result are computed and opened: N*(w/2) AND gates per level, not N*w as
in a Kogge-Stone word shift, so BitLT over 64 positions opens 189 bits per value instead of
17 words (1088 bits).

Circuits:
  BitLT  [c < r] for a public c and XOR-shared bits of r over m positions: per position
         (G, E) = (r AND NOT c, NOT (r XOR c)) and the carry-lookahead combination
         (G, E)_hi o (G, E)_lo = (G_hi XOR E_hi G_lo, E_hi E_lo) [Catrina and de Hoogh,
         SCN 2010, sec. 4 (BitLT by a prefix of the carry operator)], positions padded with
         the neutral (0, 1) to w = 2^ceil(log2 m) (at least 2). ceil(log2 m) rounds; two ANDs
         per pair (sharing their left operand: three opened bits) except one in the last.
  EQ     AND of w bits by pairs: ceil(log2 w) rounds, one AND (two opened bits) per pair.
  B2A    arithmetic shares of a bit held in XOR shares, with a daBit (b arithmetic, b XOR)
         [Rotaru and Wood, "MArBled Circuits", INDOCRYPT 2019]: e = open(bit XOR b),
         bit = e ? 1 - b : b. One round, one opened bit per value.
ANDs use boolean Beaver triples on words [Beaver, CRYPTO 1991]; triples whose first factor
is shared serve the two ANDs with the same left operand.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from network.errors import SmpcError
from protocols.session import Session, Share

_U64 = np.uint64
_ONE = _U64(1)
_ONES = _U64(0xFFFFFFFFFFFFFFFF)
# compaction masks: after step k the kept bits sit in groups of 2^k
_EVEN = _U64(0x5555555555555555)
_STEPS = (
    (_U64(1), _U64(0x3333333333333333)),
    (_U64(2), _U64(0x0F0F0F0F0F0F0F0F)),
    (_U64(4), _U64(0x00FF00FF00FF00FF)),
    (_U64(8), _U64(0x0000FFFF0000FFFF)),
    (_U64(16), _U64(0x00000000FFFFFFFF)),
)


def nwords(nbits: int) -> int:
    """Words holding a vector of nbits bits (at least one)."""
    return max(1, -(-nbits // 64))


def _even(x: np.ndarray) -> np.ndarray:
    """Bits 0, 2, 4, ... of the vector in words x, packed: ceil(len(x) / 2) words."""
    y = x & _EVEN
    for sh, mask in _STEPS:
        y |= y >> sh
        y &= mask
    if y.size % 2:
        y = np.append(y, _U64(0))
    out = y[1::2] << _U64(32)
    out |= y[0::2]
    return out


def _odd(x: np.ndarray) -> np.ndarray:
    """Bits 1, 3, 5, ... of the vector in words x, packed."""
    return _even(x >> _ONE)


def pack_values(words: np.ndarray, w: int) -> np.ndarray:
    """The low w bits (w a power of two, 1 <= w <= 64) of each word of `words` (N,), as one
    vector of N*w bits (value k at bits [k*w, (k+1)*w))."""
    words = np.ascontiguousarray(words.reshape(-1))
    if w == 64:
        return words.copy()
    per = 64 // w
    N = words.size
    padded = np.zeros(nwords(N * w) * per, dtype=_U64)
    padded[:N] = words
    padded[:N] &= _U64((1 << w) - 1)
    cols = padded.reshape(-1, per)
    out = cols[:, 0].copy()
    for j in range(1, per):
        out |= cols[:, j] << _U64(j * w)
    return out


def pack_bits(words: np.ndarray) -> np.ndarray:
    """Bit 0 of each word of `words` (N,), as a vector of N bits."""
    b = (words.reshape(-1) & _ONE).astype(np.uint8)
    raw = np.packbits(b, bitorder="little")
    out = np.zeros(nwords(b.size), dtype=_U64)
    out.view(np.uint8)[: raw.size] = raw
    return out


def unpack_bits(vec: np.ndarray, N: int) -> np.ndarray:
    """The first N bits of a vector, as bool (N,)."""
    return np.unpackbits(np.ascontiguousarray(vec).view(np.uint8), bitorder="little", count=N).astype(bool)


async def open_words(
    s: Session, xor_words: list[np.ndarray], add_words: Sequence[np.ndarray] = ()
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Open XOR-shared and additively shared (Z_2^64) uint64 arrays in one round, one
    message per peer: (the XOR-opened arrays, the sum-opened arrays). Semi-honest only
    (MaliciousUnsupportedError in a malicious session)."""
    s.require_semi_honest("bitwise.open_words")
    parts = [w.reshape(-1) for w in xor_words] + [w.reshape(-1) for w in add_words]
    flat = np.concatenate(parts) if len(parts) > 1 else parts[0].copy()
    nx = sum(w.size for w in xor_words)
    tag = s.tag("wopen")
    try:
        for j in s.peers:
            await s.channel.send(j, tag, flat)
        acc = flat.copy()
        for j in s.peers:
            got = await s.channel.recv_array(j, tag, dtype=np.uint64, shape=flat.shape)
            acc[:nx] ^= got[:nx]
            acc[nx:] += got[nx:]
    except SmpcError as e:
        await s.abort(e)
        raise
    s.stats.rounds += 1
    out: list[np.ndarray] = []
    k = 0
    for w in [*xor_words, *add_words]:
        out.append(acc[k : k + w.size].reshape(w.shape))
        k += w.size
    return out[: len(xor_words)], out[len(xor_words) :]


async def bool_open(s: Session, vecs: list[np.ndarray]) -> list[np.ndarray]:
    """Open XOR-shared word arrays in one round (one message per peer)."""
    return (await open_words(s, vecs))[0]


async def band(s: Session, x: np.ndarray, ys: list[np.ndarray]) -> list[np.ndarray]:
    """XOR shares of x & y for each y (word arrays of x's shape), in one round, with triples
    sharing their first factor [Beaver91]: d = open(x ^ a), e_i = open(y_i ^ b_i),
    z_i = c_i ^ (d & b_i) ^ (e_i & a) ^ (d & e_i) (the last term at party 0 only)."""
    a, b, c = await s.prep.bool_triples(x.shape, len(ys))
    d, *es = await bool_open(s, [x ^ a] + [y ^ b[i] for i, y in enumerate(ys)])
    out = []
    for i, e in enumerate(es):
        z = c[i] ^ (d & b[i])
        z ^= e & a
        if s.pid == 0:
            z ^= d & e
        out.append(z)
    return out


def _fit(v: np.ndarray, n: int) -> np.ndarray:
    """v cut or zero-padded to n words (compaction rounds odd word counts up)."""
    if v.size == n:
        return v
    if v.size > n:
        return v[:n]
    return np.concatenate([v, np.zeros(n - v.size, dtype=_U64)])


def levels(m: int) -> int:
    """ceil(log2 m): the rounds of BitLT over m positions (m >= 1) and of EQ over m bits."""
    return max(0, (m - 1).bit_length())


def width(m: int) -> int:
    """The padded number of positions 2^ceil(log2 m) for m >= 1."""
    return 1 << levels(m)


async def bitlt(s: Session, c: np.ndarray, r: np.ndarray, m: int) -> np.ndarray:
    """XOR shares of [c mod 2^m < r mod 2^m] for public words c (N,) and XOR-shared words
    r (N,) (bit i = position i), 1 <= m <= 64, as a vector of N bits.
    Rounds: ceil(log2 m). Bits opened per value: 3 * (w - 2) + 2 for w = 2^ceil(log2 m) >= 2
    (188 for m = 64 or 63, 92 for m = 32), 0 for m = 1."""
    N = c.size
    mask = _U64((1 << m) - 1) if m < 64 else _ONES
    nc = ~c.reshape(-1)
    rr = r.reshape(-1)
    G = rr & nc
    G &= mask
    if s.pid == 0:
        E = rr ^ nc
        E |= ~mask  # neutral E = 1 on the padding positions
    else:
        E = rr & mask
    w = width(m)
    if w == 1:
        return pack_bits(G)
    G, E = pack_values(G, w), pack_values(E, w)
    while w > 2:
        n_out = nwords(N * w // 2)
        Gl, Gh = _fit(_even(G), n_out), _fit(_odd(G), n_out)
        El, Eh = _fit(_even(E), n_out), _fit(_odd(E), n_out)
        t_g, t_e = await band(s, Eh, [Gl, El])
        t_g ^= Gh
        G, E = t_g, t_e
        w //= 2
    n_out = nwords(N)
    (t_g,) = await band(s, _fit(_odd(E), n_out), [_fit(_even(G), n_out)])
    t_g ^= _fit(_odd(G), n_out)
    return t_g


async def all_ones(s: Session, e: np.ndarray, m: int) -> np.ndarray:
    """XOR shares of [bits 0..m-1 of e are all 1] for XOR-shared words e (N,), 1 <= m <= 64,
    as a vector of N bits. Rounds: ceil(log2 m); bits opened per value: 2 * (w - 1) for
    w = 2^ceil(log2 m) (126 for m = 64)."""
    N = e.size
    E = e.reshape(-1).copy()
    if m < 64 and s.pid == 0:
        E |= ~_U64((1 << m) - 1)  # padding positions: 1 (neutral)
    elif m < 64:
        E &= _U64((1 << m) - 1)
    w = width(m)
    if w == 1:
        return pack_bits(E)
    E = pack_values(E, w)
    while w > 1:
        n_out = nwords(N * w // 2)
        (E,) = await band(s, _fit(_odd(E), n_out), [_fit(_even(E), n_out)])
        w //= 2
    return E


async def b2a_open(s: Session, bits: np.ndarray, dabit_xor: np.ndarray, flip: np.ndarray | None = None) -> np.ndarray:
    """The public e = bit XOR b XOR flip (bool (N,)) for the XOR-shared vector `bits` of N
    bits, the XOR halves of N daBits (words, bit 0) and a public bool flip (None: none): the
    value bit XOR flip is then e XOR b, i.e. (1 - b if e else b) arithmetically.
    Rounds: 1; bits opened per value: 1."""
    N = dabit_xor.size
    (e,) = await bool_open(s, [_fit(bits, nwords(N)) ^ pack_bits(dabit_xor)])
    eb = unpack_bits(e, N)
    if flip is not None:
        eb ^= flip.reshape(-1)
    return eb


def select_bit(e: np.ndarray, if_true: np.ndarray, if_false: np.ndarray) -> np.ndarray:
    """Elementwise e ? if_true : if_false for a public bool e, into a copy of if_true."""
    out = if_true.copy()
    np.copyto(out, if_false, where=~e)
    return out


async def b2a(s: Session, bits: np.ndarray, shape: tuple[int, ...], flip: np.ndarray | None = None) -> Share:
    """Arithmetic shares (in the session's domain and scheme) of bit XOR flip for the XOR-shared
    vector `bits` of N = prod(shape) bits and a public bool `flip` (N,) (None: no flip), with
    one daBit per value. Rounds: 1; bits opened per value: 1."""
    b_a, b_b = await s.prep.dabits(tuple(shape))
    e = await b2a_open(s, bits, b_b.reshape(-1), flip)
    b = Share(b_a.reshape(-1), s)
    return Share(select_bit(e, (1 - b).data, b.data).reshape(shape), s)


def opened_bits(op: str, m: int) -> int:
    """Bits each party sends to each peer per value in the boolean part (the circuit and the
    conversion) of a comparison: "lt" (BitLT over m positions + B2A) or "eq" (EQ over m bits
    + B2A); exact when N * w is a multiple of 64 * w (see `opened_words` otherwise)."""
    w = width(m)
    if op == "lt":
        return (3 * (w - 2) + 2 if w >= 2 else 0) + 1
    if op == "eq":
        return 2 * (w - 1) + 1
    raise ValueError(f"opened_bits: op must be 'lt' or 'eq', got {op!r}")


def opened_words(op: str, m: int, N: int) -> int:
    """Exact 64-bit words each party sends to each peer in the boolean part of a comparison of
    N values ("lt" or "eq" over m positions, then B2A): every opened vector is rounded up to
    whole words."""
    w = width(m)
    total = nwords(N)  # B2A
    if op == "lt":
        while w > 2:
            total += 3 * nwords(N * w // 2)
            w //= 2
        if w == 2:
            total += 2 * nwords(N)
        return total
    if op == "eq":
        while w > 1:
            total += 2 * nwords(N * w // 2)
            w //= 2
        return total
    raise ValueError(f"opened_words: op must be 'lt' or 'eq', got {op!r}")
