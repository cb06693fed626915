"""OT-based preprocessing (additive over Z_2^64, any n): correctness of every item kind, the
distribution of what a receiver sees, and Beaver mul / matmul end to end."""

import numpy as np
import pytest
from preprocessing_helpers import make_scheme, reconstruct, run_all, sessions

from protocols import beaver, core
from protocols.errors import ConfigError
from protocols.preprocessing import _otext, ot
from protocols.preprocessing.ot import OTPreprocessing

pytestmark = pytest.mark.timeout(60)


def ot_sessions(n, batch=256):
    sch = make_scheme("additive", n)
    return sch, sessions(n, sch, lambda s: OTPreprocessing(s, batch=batch))


@pytest.mark.parametrize("n", [2, 3, 5])
def test_all_kinds_correct(n):
    sch, ss = ot_sessions(n)

    async def job(s):
        return (
            await s.prep.triples((5, 7)),
            await s.prep.triples((300,)),  # refill beyond the pool
            await s.prep.square_pairs((20,)),
            (await s.prep.bits((400,)),),
            await s.prep.matrix_triples((6, 4), (4, 3)),
            await s.prep.matrix_triples((5, 4), (4,)),
            (await s.prep.randoms((3,)),),
        )

    res = run_all(ss, job)
    rec = lambda k, j: reconstruct(sch, [r[k][j] for r in res])  # noqa: E731
    for k in (0, 1):
        a, b, c = rec(k, 0), rec(k, 1), rec(k, 2)
        assert (a * b == c).all()
    assert len(np.unique(np.concatenate([rec(0, 0).ravel(), rec(1, 0)]))) == 335
    a, a2 = rec(2, 0), rec(2, 1)
    assert (a * a == a2).all()
    bits = rec(3, 0)
    assert set(np.unique(bits).tolist()) == {0, 1} and 130 < int(bits.sum()) < 270
    for k, shape in ((4, (6, 3)), (5, (5,))):
        A, B, C = rec(k, 0), rec(k, 1), rec(k, 2)
        assert C.shape == shape and (A @ B == C).all()


def test_needs_additive_ring():
    sch = make_scheme("shamir", 3)
    with pytest.raises(ConfigError):
        sessions(3, sch, lambda s: OTPreprocessing(s))


def _zero_hash_blocks(aes, x, base, M):
    """A broken hash: every TMMO block and pi(x) zero (so every hash word is 0)."""
    yield 0, np.zeros((x.shape[0], 2 * ((M + 1) // 2)), np.uint64), np.zeros((x.shape[0], 2), np.uint64)


@pytest.mark.parametrize("broken", [False, True])
def test_receiver_sees_uniform_corrections(broken, monkeypatch):
    """The Gilboa corrections tau = H(q) + x - H(q ^ s) mod 2^(64-k) that the sender sends
    must look uniform and unrelated to x (they are all the receiver learns about x). Broken
    variant: a hash that outputs zeros, so tau = x: x in the clear; the test must fail."""
    sch, ss = ot_sessions(2, batch=64)
    if broken:
        monkeypatch.setattr(_otext, "_hash_blocks", _zero_hash_blocks)
    seen = []
    orig = OTPreprocessing._array_round

    async def spy(self, op, out, shapes, dtype):
        if op == "ot-gtau" and self.s.pid == 0:
            seen.extend(v for v in out.values())
        return await orig(self, op, out, shapes, dtype)

    monkeypatch.setattr(OTPreprocessing, "_array_round", spy)
    a0 = run_all(ss, lambda s: s.prep.triples((64,)))[0][0]
    # the 8-byte tier: corrections of bits k = 0..31 of y, (64 elements, 32 k) words
    tau = seen[0][: 64 * 32 * 8].view(np.uint64).reshape(64, 32)
    counts = np.bincount((tau.ravel() & np.uint64(15)).astype(np.int64), minlength=16)
    exp = tau.size / 16
    chi2 = float(((counts - exp) ** 2 / exp).sum())
    same = float((tau == a0[:, None]).mean())  # party 0's x = its share of a
    assert (chi2 < 50 and same < 0.01) != broken


@pytest.mark.parametrize("n", [2, 3])
def test_beaver_end_to_end(n):
    sch, ss = ot_sessions(n, batch=64)
    D = sch.domain
    g = np.random.default_rng(2)  # plaintext test data only
    X, Y = g.integers(-(2**20), 2**20, (6, 5)), g.integers(-(2**20), 2**20, (6, 5))
    M = g.integers(-(2**20), 2**20, (5, 2))

    async def job(s):
        x = await core.input(s, D.from_int(X) if s.pid == 0 else None, 0)
        y = await core.input(s, D.from_int(Y) if s.pid == n - 1 else None, n - 1)
        m = await core.input(s, D.from_int(M) if s.pid == 0 else None, 0)
        z = await beaver.mul(s, x, y)
        w = await beaver.matmul(s, x, m)
        q = await beaver.square(s, y)
        return await core.open(s, z, w, q)

    for z, w, q in run_all(ss, job):
        assert (z.view(np.int64) == X * Y).all()
        assert (w.view(np.int64) == X @ M).all()
        assert (q.view(np.int64) == Y * Y).all()


# -- the kinds comparisons and truncation use: same format as the trusted dealer's ----------
def _xor(parts):
    return np.bitwise_xor.reduce(np.stack(parts), axis=0)


MIXED = (  # (method, args, how each component is shared: "a" additive, "x" XOR)
    ("dabits", ((300,),), "ax"),
    ("edabits", ((7, 9),), "ax"),
    ("bool_triples", ((30,), 2), "xxx"),
    ("bool_triples", ((4, 5), 1), "xxx"),
    ("trunc_triples", ((50,), 16), "aaa"),
    ("trunc_pairs", ((20,), 8, 40), "aa"),
    ("bounded_randoms", ((20,), 41), "a"),
    ("bits", ((100,),), "a"),
)


@pytest.mark.parametrize("n", [2, 3])
def test_mixed_kinds_correct_and_shaped_as_the_dealers(n):
    from protocols.preprocessing.trusted_dealer import InsecureTrustedDealer
    from protocols.prg import CryptoRNG

    sch = make_scheme("additive", n)
    ss = sessions(n, sch, lambda s: OTPreprocessing(s, batch=64, dabit_chunk=2000, bool_chunk=16))
    dealer = InsecureTrustedDealer(sch, CryptoRNG.from_seed(1, "dealer"))

    def as_tuple(v):
        return v if isinstance(v, tuple) else (v,)

    async def job(s):
        return [as_tuple(await getattr(s.prep, k)(*args)) for k, args, _ in MIXED]

    res = run_all(ss, job)
    ref = run_all(ss, lambda s: job(type("S", (), {"prep": dealer.for_party(s.pid)})()))
    items = {}
    for i, (kind, args, how) in enumerate(MIXED):
        comps = []
        for j, h in enumerate(how):
            parts = [r[i][j] for r in res]
            want = ref[0][i][j]
            assert all(p.shape == want.shape and p.dtype == want.dtype for p in parts), (kind, j)
            comps.append(reconstruct(sch, parts) if h == "a" else _xor(parts))
        items[(kind, *map(str, args))] = comps
    v = list(items.values())
    ba, bx = v[0]
    assert set(np.unique(ba).tolist()) == {0, 1} and (ba == bx).all() and 100 < int(ba.sum()) < 200
    r, rx = v[1]
    assert (r == rx).all() and len(np.unique(r)) == r.size
    for a, b, c in (v[2], v[3]):
        assert (c == (a[None] & b)).all()
        assert 0.4 < np.unpackbits(a.view(np.uint8)).mean() < 0.6
    r, hi, msb = v[4]
    assert (hi == (r & np.uint64((1 << 63) - 1)) >> np.uint64(16)).all() and (msb == r >> np.uint64(63)).all()
    r, rf = v[5]
    assert (r < (1 << 40)).all() and (rf == r >> np.uint64(8)).all()
    (br,) = v[6]
    assert (br < (1 << 41)).all() and int(br.max()).bit_length() > 36
    (bits,) = v[7]
    assert set(np.unique(bits).tolist()) == {0, 1}


def test_mixed_kinds_out_of_range_refused():
    from protocols.errors import PreprocessingExhausted

    sch, ss = ot_sessions(2)
    for kind, args in (("trunc_triples", ((2,), 63)), ("trunc_triples", ((2,), 0)), ("bounded_randoms", ((2,), 64)),
                       ("trunc_pairs", ((2,), 8, 64)), ("bool_triples", ((2,), 0))):
        with pytest.raises(PreprocessingExhausted):
            run_all(ss, lambda s, k=kind, a=args: getattr(s.prep, k)(*a))


@pytest.mark.parametrize("broken", [False, True])
def test_edabits_uniform(broken, monkeypatch):
    """edaBit masks must be uniform on all of Z_2^64 (comparison hides x + r only then): the
    top 4 bits pass a chi-square test. Broken variant: edaBits from 63 daBits (the top bit
    always 0, an off-by-one), which must fail."""
    if broken:
        orig = OTPreprocessing._weighted_dabits

        async def short(self, shape, nbits):
            a, x = await orig(self, shape, nbits)
            a[-1] = 0
            x[-1] = 0
            return a, x

        monkeypatch.setattr(OTPreprocessing, "_weighted_dabits", short)
    sch, ss = ot_sessions(2)
    out = run_all(ss, lambda s: s.prep.edabits((1600,)))
    r = reconstruct(sch, [o[0] for o in out])
    assert (r == _xor([o[1] for o in out])).all()
    counts = np.bincount((r >> np.uint64(60)).astype(np.int64), minlength=16)
    chi2 = float(((counts - 100.0) ** 2 / 100.0).sum())
    assert (chi2 < 50) != broken


@pytest.mark.parametrize("broken", [False, True])
def test_dabit_receiver_sees_uniform_corrections(broken, monkeypatch):
    """In the daBit fold party 1 receives tau = H(q) + acc_0 - H(q ^ s), where acc_0 is party
    0's bit: it must look uniform. Broken variant: a zero hash, so tau = -acc_0 in {0, -1}
    (party 0's bit in the clear); the test must fail."""
    if broken:
        monkeypatch.setattr(_otext, "_hash_blocks", _zero_hash_blocks)
    seen = []
    orig = OTPreprocessing._array_round

    async def spy(self, op, out, shapes, dtype):
        got = await orig(self, op, out, shapes, dtype)
        if op == "ot-tau" and self.s.pid == 1:
            seen.extend(got.values())
        return got

    monkeypatch.setattr(OTPreprocessing, "_array_round", spy)
    sch, ss = ot_sessions(2)
    run_all(ss, lambda s: s.prep.dabits((1600,)))
    tau = np.concatenate([t.ravel() for t in seen])
    counts = np.bincount((tau & np.uint64(15)).astype(np.int64), minlength=16)
    exp = tau.size / 16
    assert (float(((counts - exp) ** 2 / exp).sum()) < 50) != broken


# -- base OTs: a peer's bad points end in a typed error ---------------------------------------
def _run_catching(ss, job):
    import asyncio

    async def main():
        return await asyncio.gather(*(job(s) for s in ss), return_exceptions=True)

    return asyncio.run(main())


@pytest.mark.parametrize("attack", ["B=A", "invalid", "sodium"])
def test_bad_base_ot_points_are_frame_errors(attack, monkeypatch):
    from network.errors import FrameError, SmpcError

    sch, ss = ot_sessions(2)
    seenA = {}
    orig = OTPreprocessing._bytes_round

    async def evil(self, op, out, sizes):
        if self.s.pid == 1 and op == "baseot-B":
            out = {0: seenA[0] * ot.KAPPA if attack == "B=A" else b"\x07" * (32 * ot.KAPPA)}
        got = await orig(self, op, out, sizes)
        if self.s.pid == 1 and op == "baseot-A":
            seenA.update(got)
        return got

    if attack == "sodium":  # any libsodium failure (untyped RuntimeError) becomes typed
        import nacl.exceptions

        def boom(*a):
            raise nacl.exceptions.RuntimeError("Unexpected library error")

        monkeypatch.setattr(_otext.nb, "crypto_scalarmult_ed25519_noclamp", boom)
    else:
        monkeypatch.setattr(OTPreprocessing, "_bytes_round", evil)
    errs = _run_catching(ss, lambda s: s.prep.triples((8,)))
    assert isinstance(errs[0], FrameError), errs
    assert all(isinstance(e, SmpcError) for e in errs), errs
