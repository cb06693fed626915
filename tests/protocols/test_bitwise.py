"""Packed XOR-shared bit vectors: the compaction and packing helpers against plain Python,
BitLT and the AND tree for every width against the plaintext comparison, exact opened
words, and the daBit conversion in every domain."""

import numpy as np
import pytest

import mpc
from protocols import bitwise as B
from protocols.arith.field import Mersenne61, Mersenne127

U64 = np.uint64


def words(g, n):
    return g.integers(0, 2**64, size=n, dtype=np.uint64)


def bits_of(vec, nbits):
    return [(int(vec[j // 64]) >> (j % 64)) & 1 for j in range(nbits)]


@pytest.mark.parametrize("n", [1, 2, 5, 64])
def test_even_odd_and_packing_match_plain_python(n):
    g = np.random.default_rng(n)
    x = words(g, n)
    allbits = bits_of(x, 64 * n)
    assert bits_of(B._even(x), 32 * n) == allbits[0::2]
    assert bits_of(B._odd(x), 32 * n) == allbits[1::2]
    for w in (1, 2, 4, 8, 16, 32, 64):
        packed = B.pack_values(x, w)
        assert packed.size == B.nwords(n * w)
        want = [b for v in x for b in bits_of(np.array([v]), 64)[:w]]
        assert bits_of(packed, n * w) == want
        assert all(b == 0 for b in bits_of(packed, packed.size * 64)[n * w :])  # zero padding
    assert list(B.unpack_bits(B.pack_bits(x), n)) == [bool(int(v) & 1) for v in x]


def _run_circuit(n, fn, c, rs, m):
    """Run fn(s, c, r_share, m) for XOR shares of r on n parties; return the opened bits."""
    async def job(s):
        out = await fn(s, c, rs[s.pid], m)
        (v,) = await B.bool_open(s, [out])
        return B.unpack_bits(v, c.size), s.stats.copy()

    return mpc.run_local(n, job, seed=3).results


def _xor_shares(g, r, n):
    parts = [words(g, r.size) for _ in range(n - 1)]
    first = r.copy()
    for p in parts:
        first ^= p
    return [first, *parts]


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("m", [1, 2, 3, 5, 8, 17, 31, 32, 33, 63, 64])
def test_bitlt_every_width(n, m):
    g = np.random.default_rng(1000 * n + m)
    N = 300
    c, r = words(g, N), words(g, N)
    mask = (1 << m) - 1
    c[:4] = [0, 0, mask, 2**63]  # equal low bits, zero, all ones
    r[:4] = [0, 1, mask, 2**63]
    c[4:40] = r[4:40] ^ U64(1 << (m - 1))  # differ only in the top compared bit
    c[40:80] = r[40:80]  # equal
    want = [(int(a) & mask) < (int(b) & mask) for a, b in zip(c, r, strict=True)]
    for got, stats in _run_circuit(n, B.bitlt, c, _xor_shares(g, r, n), m):
        assert list(got) == want
        assert stats.rounds == B.levels(m) + 1  # + the test's own opening
        # the circuit's openings plus the test's own (one vector of N bits, the size of the
        # daBit conversion that opened_words counts)
        assert stats.bytes_sent == (n - 1) * 8 * B.opened_words("lt", m, N)


@pytest.mark.parametrize("m", [1, 2, 7, 32, 64])
def test_all_ones_every_width(m):
    g = np.random.default_rng(m)
    N = 257
    mask = (1 << m) - 1
    e = words(g, N)
    e[: N // 2] |= U64(mask)  # many all-ones rows, with random bits above m
    e[5:40] ^= U64(1 << (m - 1))  # one zero at the top position
    want = [(int(v) & mask) == mask for v in e]
    for got, stats in _run_circuit(3, lambda s, c, r, m_: B.all_ones(s, r, m_), e, _xor_shares(g, e, 3), m):
        assert list(got) == want
        assert stats.rounds == B.levels(m) + 1


def test_opened_bits_per_value():
    assert B.opened_bits("lt", 63) == B.opened_bits("lt", 64) == 189
    assert B.opened_bits("lt", 32) == 93 and B.opened_bits("lt", 1) == 1
    assert B.opened_bits("eq", 64) == 127 and B.opened_bits("eq", 1) == 1
    for m in (2, 9, 33, 64):
        for op in ("lt", "eq"):
            assert B.opened_words(op, m, 64 * 100) == 100 * B.opened_bits(op, m)


@pytest.mark.parametrize("scheme,dom", [("additive", None), ("shamir", Mersenne127()),
                                        ("shamir", Mersenne61()), ("additive", Mersenne127())])
def test_b2a_in_every_domain(scheme, dom):
    g = np.random.default_rng(5)
    N = 1000
    bits = g.integers(0, 2, size=N).astype(U64)
    flip = g.integers(0, 2, size=N).astype(bool)
    vec = B.pack_bits(bits)
    shares = _xor_shares(g, vec, 3)

    async def job(s):
        v = await B.b2a(s, shares[s.pid], (N,), flip)
        from protocols import core

        (o,) = await core.open(s, v)
        return [int(t) for t in s.domain.to_int(o)]

    for got in mpc.run_local(3, job, scheme=scheme, domain=dom, seed=6).results:
        assert got == list((bits.astype(bool) ^ flip).astype(int))


def test_comparison_asks_only_for_what_the_source_declares(field_random_bits):
    """A GF(p) comparison over a source that declares no field edaBits (`supports`) takes
    the random-bit circuit without asking for them (the fixture fails any such request);
    the recorded request log (what benchmarks replay to prefetch) holds exactly what it
    drew, so replaying it works."""
    import asyncio

    from mpc.local import close_sessions, open_sessions
    from protocols import comparison, core

    X = np.array([-3, 0, 4])

    async def main():
        ss = await open_sessions(3, scheme="shamir", domain=Mersenne127(), seed=1)
        try:
            assert not any(s.prep.supports("edabits") for s in ss)
            assert all(s.prep.supports("bits") for s in ss)

            async def share(s):
                return await core.input(s, s.domain.from_int(X) if s.pid == 0 else None, 0)

            async def job(s, x):
                (o,) = await core.open(s, await comparison.ltz(s, x))
                return s.domain.to_int(o)

            xs = await asyncio.gather(*(share(s) for s in ss))
            for s in ss:
                s.prep.log = []
            outs = await asyncio.gather(*(job(s, x) for s, x in zip(ss, xs, strict=True)))
            logs = [s.prep.log for s in ss]
            for s in ss:
                s.prep.log = None
            assert all(list(o) == [1, 0, 0] for o in outs)
            assert all({k for k, _ in log} == {"bits", "bounded_randoms", "triples"} for log in logs)
            await asyncio.gather(*(s.prep.replay(logs[s.pid]) for s in ss))
        finally:
            await close_sessions(ss)

    asyncio.run(main())
