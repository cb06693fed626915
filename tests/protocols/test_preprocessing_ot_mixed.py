"""The OT source's ltz_tuples and matrix_trunc_triples (protocols.preprocessing._otmixed):
the items reconstruct to the correlation their consumers need for n = 2, 3, 5, broken
variants are caught, exact offline rounds and bytes of the products they are built from,
and the 3-round comparison / ltz_mul run on them end to end."""

import numpy as np
import pytest
from preprocessing_helpers import make_scheme, reconstruct, run_all, sessions

from mpc.local import run_local
from protocols import comparison, core
from protocols.comparison import ltz_tuple_values
from protocols.preprocessing import _otext
from protocols.preprocessing.ot import OTPreprocessing
from protocols.preprocessing.trusted_dealer import InsecureTrustedDealer
from protocols.prg import CryptoRNG

pytestmark = pytest.mark.timeout(120)

# bit positions the 3-round comparison reads from the monomial tables (see _otmixed)
M1_READ = np.uint64(0x1111111111111111)
M2_READ = np.uint64(0x0001000100010001)


def ot_sessions(n, **kw):
    sch = make_scheme("additive", n)
    return sch, sessions(n, sch, lambda s: OTPreprocessing(s, **kw))


def _xor(parts):
    out = parts[0].copy()
    for p in parts[1:]:
        out ^= p
    return out


def ltz_ok(sch, items, mul: bool) -> bool:
    """Every array of the reconstructed item is ltz_tuple_values of its own words (M1 / M2
    at the positions the comparison reads)."""
    r = reconstruct(sch, [it[0] for it in items])
    words = [r] + [_xor([it[i] for it in items]) for i in (3, 4, 6, 7)]
    if mul:
        words.append(reconstruct(sch, [it[10] for it in items]))
    want = ltz_tuple_values(*words)
    if len(want) != len(items[0]):
        return False
    for i, (v, how) in enumerate(want):
        got = reconstruct(sch, [it[i] for it in items]) if how == "a" else _xor([it[i] for it in items])
        if got.shape != v.shape:
            return False
        mask = M1_READ if i == 2 else M2_READ if i == 5 else np.uint64(2**64 - 1)
        if not ((got & mask) == (v & mask)).all():
            return False
    return True


def mtt_ok(sch, items, f: int) -> bool:
    A, B, C, r, r_hi, r_msb, AR, AM = (reconstruct(sch, [it[i] for it in items]) for i in range(8))
    return bool(
        (A @ B == C).all()
        and (r_hi == (r & np.uint64(2**63 - 1)) >> np.uint64(f)).all()
        and (r_msb == r >> np.uint64(63)).all()
        and (A @ r_hi == AR).all()
        and (A * r_msb[None, :] == AM).all()
    )


@pytest.mark.parametrize("n", [2, 3, 5])
def test_ltz_tuples_and_matrix_trunc_triples_correct(n):
    sch, ss = ot_sessions(n, ltz_chunk=100, mat_words=1 << 12)

    async def job(s):
        return (
            await s.prep.ltz_tuples((3, 50), True),  # beyond one chunk: pooled refill
            await s.prep.ltz_tuples((70,), False),
            await s.prep.ltz_tuples((), True),
            await s.prep.matrix_trunc_triples((6, 4), (4,), 16),
            await s.prep.matrix_trunc_triples((6, 4), (4,), 16),  # from the same batch
            await s.prep.matrix_trunc_triples((3, 5), (5,), 40),
        )

    res = run_all(ss, job)
    for idx, mul in ((0, True), (1, False), (2, True)):
        items = [r[idx] for r in res]
        assert ltz_ok(sch, items, mul)
        assert items[0][2].shape == (11, *items[0][0].shape) and items[0][9].shape == (22, *items[0][0].shape)
    for idx, f in ((3, 16), (4, 16), (5, 40)):
        assert mtt_ok(sch, [r[idx] for r in res], f)
    # fresh randomness per item: the two (6, 4) triples differ
    A1, A2 = (reconstruct(sch, [r[i][0] for r in res]) for i in (3, 4))
    assert not (A1 == A2).any()


@pytest.mark.parametrize("broken", [None, "and", "bitmul"])
def test_broken_products_are_caught(broken, monkeypatch):
    """Broken variants: an AND that drops the receiver's hash (the cross terms come out
    wrong), a bit x vector product that drops the peers' OT outputs. The checks must fail."""
    if broken == "and":
        orig_and = _otext.OTExtension.and_words

        async def bad_and(self, a, b, ext=None):
            c = await orig_and(self, a, b, ext)
            return c ^ (a[None, :] & b) if self.s.pid == 1 else c  # party 1's local term lost

        monkeypatch.setattr(_otext.OTExtension, "and_words", bad_and)
    if broken == "bitmul":
        orig_bm = OTPreprocessing.bit_mul

        async def bad_bm(self, bits, Y):
            out = await orig_bm(self, bits, Y)
            return out + (Y * bits[:, None].astype(np.uint64) if self.s.pid == 0 else 0)

        monkeypatch.setattr(OTPreprocessing, "bit_mul", bad_bm)
    sch, ss = ot_sessions(2, ltz_chunk=64)

    async def job(s):
        return await s.prep.ltz_tuples((64,), True), await s.prep.matrix_trunc_triples((4, 3), (3,), 20)

    res = run_all(ss, job)
    ok_ltz = ltz_ok(sch, [r[0] for r in res], True)
    ok_mtt = mtt_ok(sch, [r[1] for r in res], 20)
    if broken is None:
        assert ok_ltz and ok_mtt
    elif broken == "and":
        assert not ok_ltz
    else:
        assert not ok_ltz and not ok_mtt


@pytest.mark.parametrize("n", [2, 3])
def test_product_rounds_and_bytes(n):
    """The docstrings' counts, base OTs excluded (run first): bit_mul 1 + n rounds and
    (n-1) (16 N + 8 N M) bytes (u to every peer, tau to every peer in its round); cross
    2 rounds and (n-1) L (64 * 16 + 344 M); and_words 2 rounds and (n-1) L (64 * 16 + 8 k);
    one ltz_tuples chunk 3n + 19 rounds (daBits n, r63's bit_mul 1 + n, the monomials of
    the three levels 1 + 3, 1 + 6, 1 + 5, the arithmetic ones' bit_mul 1 + n)."""
    sch, ss = ot_sessions(n, ltz_chunk=128)
    N, M, L, k = 64, 3, 16, 5

    async def job(s):
        p = s.prep
        await p._setup()
        out = []
        for step in (
            lambda: p.bit_mul(s.rng.bits(N).astype(np.uint8), s.rng.uint64((N, M))),
            lambda: p.cross(s.rng.uint64((L, M)), s.rng.uint64(L)),
            lambda: p.and_words(s.rng.uint64(L), s.rng.uint64((k, L))),
            lambda: p.ltz_tuples((128,), True),
        ):
            before = p.stats.copy()
            await step()
            d = p.stats - before
            out.append((d.rounds, d.bytes_sent))
        return out

    for got in run_all(ss, job):
        assert got[0] == (1 + n, (n - 1) * (16 * N + 8 * N * M))
        assert got[1] == (2, (n - 1) * L * (64 * 16 + 344 * M))
        assert got[2] == (2, (n - 1) * L * (64 * 16 + 8 * k))
        assert got[3][0] == 3 * n + 19


@pytest.mark.parametrize("n", [2, 3])
def test_three_round_comparison_on_ot_tuples(n):
    """ltz and ltz_mul from the OT source's ltz_tuples: exact on every int64 (both ends of
    the range, 0, +-1), 3 rounds, and the same answers as the plaintext."""
    g = np.random.default_rng(3)
    xv = g.integers(-(2**63), 2**63 - 1, size=300, dtype=np.int64)
    xv[:6] = [0, 1, -1, -(2**63), 2**63 - 1, -2]
    yv = g.integers(-(2**40), 2**40, size=300, dtype=np.int64)

    async def job(s):
        x = await core.input(s, s.domain.from_int(xv) if s.pid == 0 else None, 0)
        y = await core.input(s, s.domain.from_int(yv) if s.pid == 1 else None, 1)
        before = s.stats.copy()
        b = await comparison.ltz(s, x)
        rounds = (s.stats - before).rounds
        b2, prod = await comparison.ltz_mul(s, x, y)
        return (*(v.view(np.int64) for v in await core.open(s, b, b2, prod)), rounds)

    for b, b2, prod, rounds in run_local(n, job, preprocessing="ot", seed=5).results:
        want = (xv < 0).astype(np.int64)
        assert (b == want).all() and (b2 == want).all()
        assert (prod == want * yv).all()
        assert rounds == 3


def test_items_differ_between_parties_and_runs():
    """Shares are fresh randomness: two sources with different seeds give different shares
    of different values (no fixed item)."""
    outs = []
    for seed in (1, 2):
        sch = make_scheme("additive", 2)
        ss = sessions(2, sch, lambda s: OTPreprocessing(s, ltz_chunk=32), seed=seed)
        res = run_all(ss, lambda s: s.prep.ltz_tuples((32,), False))
        outs.append(reconstruct(sch, [r[0] for r in res]))
    assert not (outs[0] == outs[1]).any()


@pytest.mark.parametrize("K,mb", [(128, 16384), (128, 3), (8, 1)])
def test_transpose_is_the_bit_transpose(K, mb):
    """bit i of row l (MSB first) = bit l of column i."""
    rows = np.random.default_rng(K + mb).integers(0, 256, (K, mb), dtype=np.uint8)
    bits = np.unpackbits(rows, axis=1)
    assert (np.unpackbits(_otext._transpose(rows), axis=1) == bits.T).all()


# every kind the OT source supplies, requested for 0 elements (and (0, d) / (k, 0) matrices)
_EMPTY_CALLS = [
    ("triples", ((0,),)), ("square_pairs", ((0,),)), ("bits", ((0,),)), ("dabits", ((0,),)),
    ("edabits", ((0,),)), ("trunc_triples", ((0,), 16)), ("trunc_pairs", ((0,), 16, 40)),
    ("bounded_randoms", ((0,), 30)), ("bool_triples", ((0,), 3)), ("ltz_tuples", ((0,), True)),
    ("ltz_tuples", ((2, 0), False)), ("matrix_triples", ((0, 4), (4, 3))),
    ("matrix_triples", ((3, 0), (0, 2))), ("matrix_triples", ((3, 4), (4, 0))),
    ("matrix_triples", ((0, 4), (4,))), ("matrix_trunc_triples", ((0, 4), (4,), 16)),
    ("matrix_trunc_triples", ((3, 0), (0,), 16)),
]


@pytest.mark.parametrize("n", [2, 3])
def test_empty_requests_give_the_dealers_empty_items(n):
    """A request for 0 elements (a comparison or DP noise on an empty array) raised an
    untyped IndexError / AssertionError / ZeroDivisionError from the OT source's pools; it
    must hand out the trusted dealer's empty items (same number of arrays, shapes and
    dtypes), every party alike, and the pools must still line up afterwards."""
    import asyncio

    sch, ss = ot_sessions(n, batch=64, dabit_chunk=64, bool_chunk=4, ltz_chunk=16)

    async def job(s):
        got = []
        for kind, args in _EMPTY_CALLS:
            v = await getattr(s.prep, kind)(*args)
            got.append(v if isinstance(v, tuple) else (v,))
        x = s.share_of(s.domain.zeros((0,)))
        (opened,) = await core.open(s, await comparison.ltz(s, x))  # the online protocol runs
        after = (await s.prep.ltz_tuples((5,), True), await s.prep.triples((7,)),
                 await s.prep.matrix_triples((0, 4), (4, 3)), await s.prep.matrix_triples((2, 4), (4, 3)))
        return got, after, opened.shape

    res = run_all(ss, job)
    dealer = InsecureTrustedDealer(sch, CryptoRNG.from_seed(9, "td"))

    async def dealt():
        out = []
        for kind, args in _EMPTY_CALLS:
            v = await getattr(dealer.for_party(0), kind)(*args)
            out.append(v if isinstance(v, tuple) else (v,))
        return out

    want = asyncio.run(dealt())
    for p in range(n):
        for (kind, args), g, w in zip(_EMPTY_CALLS, res[p][0], want, strict=True):
            assert [(v.shape, v.dtype) for v in g] == [(v.shape, v.dtype) for v in w], (kind, args)
    assert all(r[2] == (0,) for r in res)
    assert ltz_ok(sch, [r[1][0] for r in res], True)
    assert mtt_ok(sch, [r[0][-2] for r in res], 16)  # (0, 4) @ (4,): r, r_hi, r_msb still exact
    a, b, c = (reconstruct(sch, [r[1][1][i] for r in res]) for i in range(3))
    assert (a * b == c).all()
    A, B, C = (reconstruct(sch, [r[1][3][i] for r in res]) for i in range(3))
    assert C.shape == (2, 3) and (A @ B == C).all()


def _scatter_agrees(fn) -> bool:
    """`_scatter` (compiled) == its numpy reference == an independent per-bit loop, at the
    comparison's read positions, with sizes off the word grid (and N = 0)."""
    from protocols.preprocessing import _otmixed

    rng = np.random.default_rng(9)
    for K, N, pos in ((11, 130, _otmixed._P1), (20, 77, _otmixed._P2), (3, 5, _otmixed._P1),
                      (1, 1, _otmixed._P2), (2, 0, _otmixed._P1)):
        bits = rng.integers(0, 2, (K, N * len(pos))).astype(np.uint8)
        words = np.stack([_otmixed._pack(b) for b in bits]) if N else np.zeros((K, 0), np.uint64)
        want = np.zeros((K, N), dtype=np.uint64)
        for kk in range(K):
            for e in range(N):
                for p, at in enumerate(pos):
                    want[kk, e] |= np.uint64(int(bits[kk, e * len(pos) + p]) << at)
        got = fn(words, N, pos)
        if got.shape != (K, N) or not np.array_equal(got, want):
            return False
    return True


def test_scatter_kernel_matches_reference():
    from protocols.preprocessing import _otmixed

    assert _scatter_agrees(_otmixed._scatter)
    assert _scatter_agrees(_otmixed._scatter_np)


def test_scatter_broken_variant_is_caught():
    from protocols.preprocessing import _otmixed

    def broken(words, N, pos):  # positions reversed within the element
        return _otmixed._scatter(words, N, pos[::-1])

    assert not _scatter_agrees(broken)
