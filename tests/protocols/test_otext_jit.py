"""The compiled OT-extension kernels (protocols.preprocessing._ot_jit) against their numpy
references, bit for bit (random inputs, edge sizes, a broken variant that the same check
catches), and the OT source's messages: exact rounds and bytes of a fixed workload."""

import numpy as np
import pytest
from preprocessing_helpers import make_scheme, reconstruct, run_all, sessions

from protocols.preprocessing import _ot_jit, _otext, ot
from protocols.preprocessing.ot import OTPreprocessing

pytestmark = pytest.mark.timeout(120)

_U64 = np.uint64


def _bits_transpose(rows: np.ndarray) -> np.ndarray:
    """Independent reference: unpack, transpose, pack (numpy packbits order)."""
    return np.packbits(np.unpackbits(rows, axis=1).T, axis=1)


def _transpose_agrees(fn, seed: int) -> bool:
    rng = np.random.default_rng(seed)
    # 8 x 8 kernel (K or m / 8 off the word grid) and 64 x 64 kernel (K % 64 == m / 8 % 8 == 0)
    for K, mb in ((128, 1), (128, 2), (128, 7), (128, 1031), (8, 3), (16, 64), (128, 0),
                  (128, 8), (128, 1024), (64, 16), (192, 24), (72, 8)):
        rows = rng.integers(0, 256, (K, mb), dtype=np.uint8)
        got = fn(rows)
        if got.shape != (8 * mb, K // 8) or not np.array_equal(got, _bits_transpose(rows)):
            return False
        if not np.array_equal(got, _otext._transpose_np(rows)):
            return False
    return True


def test_transpose_kernel_matches_numpy():
    assert _transpose_agrees(_otext._transpose, 1)
    assert _transpose_agrees(_otext._transpose_np, 2)
    rows = np.random.default_rng(4).integers(0, 256, (128, 1), dtype=np.uint8)
    keep = rows.copy()
    _otext._transpose(rows), _otext._transpose_np(rows)
    assert np.array_equal(rows, keep)  # inputs are not overwritten (mb = 1 included)
    buf = np.random.default_rng(5).integers(0, 256, 128 * 64 + 1, dtype=np.uint8)
    odd = buf[1:].reshape(128, 64)  # not word-aligned: the 8 x 8 kernel takes it
    assert np.array_equal(_otext._transpose(odd), _bits_transpose(odd))
    # non-contiguous input (a column slice) gives the same as its contiguous copy
    rows = np.random.default_rng(3).integers(0, 256, (128, 40), dtype=np.uint8)
    assert np.array_equal(_otext._transpose(rows[:, 3:19]), _bits_transpose(rows[:, 3:19]))


def test_transpose_broken_variant_is_caught():
    def broken(rows):  # the last delta swap (36) left out
        K, mb = rows.shape
        x = np.ascontiguousarray(rows.reshape(K // 8, 8, mb).transpose(0, 2, 1)).view(_U64)[..., 0]
        for sh, mask in ((9, 0x0055005500550055), (18, 0x0000333300003333)):
            t = (x ^ (x >> _U64(sh))) & _U64(mask)
            x ^= t ^ (t << _U64(sh))
        y = x.view(np.uint8).reshape(K // 8, mb, 8)
        return np.ascontiguousarray(y.transpose(1, 2, 0)).reshape(mb * 8, K // 8)

    assert not _transpose_agrees(broken, 1)


def _hash_agrees(seed: int) -> bool:
    rng = np.random.default_rng(seed)
    aes = _otext._AES(bytes(range(16)))
    for m in (0, 1, 5, 8191, 8192, 8193, 20000):
        for M in (1, 2, 3, 64):
            x = rng.integers(0, 256, (m, 16), dtype=np.uint8)
            base = int(rng.integers(0, 1 << 40))
            got = _otext._hash(aes, x, base, M)
            if m == 0:  # (the numpy reference cannot cast an empty buffer for OpenSSL)
                if got.shape != (0, M):
                    return False
                continue
            ref = _otext._hash_np(aes, x, base, M)
            if got.shape != (m, M) or not got.flags.c_contiguous or not np.array_equal(got, ref):
                return False
    return True


@pytest.mark.parametrize("rows", [_otext._HASH_ROWS, 3, 1])
def test_hash_kernel_matches_numpy(rows, monkeypatch):
    """TMMO blockwise (default block, and tiny blocks that cross every edge) == reference."""
    monkeypatch.setattr(_otext, "_HASH_ROWS", rows)
    assert _hash_agrees(rows)


def test_hash_broken_variant_is_caught(monkeypatch):
    """Broken: every block tweaked from the first row's index (base, not base + lo)."""
    orig = _ot_jit.tmmo_tweak
    first: list[int] = []

    def stuck(p, base, y):
        first.append(int(base)) if not first else None
        orig(p, _U64(first[0]), y)

    monkeypatch.setattr(_ot_jit, "tmmo_tweak", stuck)
    assert not _hash_agrees(4)


def _gilboa_numpy(h0, h1, x, h, r):
    """The numpy reference of `cross` for one peer (before the kernels): corrections packed
    in tiers, and the sender's and receiver's output sums sum_k 2^k (...)."""
    L, M = x.shape
    t = (h0 - h1).reshape(L, 64, M) + x[:, None, :]
    raw = ot._pack_tiers(t)
    acc = -h0.reshape(L, 64, M)
    acc += h.reshape(L, 64, M) + ot._unpack_tiers(raw, L, M) * r.reshape(L, 64, 1).astype(_U64)
    acc <<= ot._SHIFTS
    return raw, acc.sum(axis=1, dtype=_U64)


def _gilboa_agrees(flip_r: bool) -> bool:
    rng = np.random.default_rng(5)
    for L, M in ((1, 1), (3, 1), (2, 5), (17, 3)):
        h0, h1, h = (rng.integers(0, 1 << 64, (64 * L, M), dtype=_U64) for _ in range(3))
        x = rng.integers(0, 1 << 64, (L, M), dtype=_U64)
        r = rng.integers(0, 2, 64 * L, dtype=np.uint8)
        raw_ref, acc_ref = _gilboa_numpy(h0, h1, x, h, r)
        raw = np.empty(L * M * ot._TIER_BYTES, dtype=np.uint8)
        acc = np.zeros((L, M), dtype=_U64)
        ot._jit.gilboa_send(h0, h1, x, *ot._tier_views(raw, L, M), acc)
        got = np.empty(raw.size + 1, dtype=np.uint8)[1:]  # misaligned, as a received buffer may be
        got[:] = raw
        ot._jit.gilboa_recv(h, *ot._tier_views(got, L, M), (1 - r) if flip_r else r, acc)
        if not (np.array_equal(raw, raw_ref) and np.array_equal(acc, acc_ref)):
            return False
    return True


def test_gilboa_kernels_match_numpy():
    assert _gilboa_agrees(False)


def test_gilboa_broken_variant_is_caught():
    assert not _gilboa_agrees(True)


@pytest.mark.parametrize(
    "n, counts",
    [  # measured on main before the kernels (17bf6ea): the kernels change no message
        (2, [(46, 2441672), (46, 2545096)]),
        (3, [(52, 4883344), (52, 4986768), (52, 5090192)]),
    ],
)
def test_messages_exactly_as_before(n, counts):
    """A fixed workload touching every OT kind: per party exact offline rounds and bytes,
    and the items are correct."""
    sch = make_scheme("additive", n)
    ss = sessions(n, sch, lambda s: OTPreprocessing(s, batch=200, dabit_chunk=72, bool_chunk=5, ltz_chunk=9))

    async def job(s):
        return [await s.prep.triples((130,)), await s.prep.matrix_triples((3, 5), (5, 2)),
                await s.prep.dabits((50,)), await s.prep.bool_triples((7,), 3),
                await s.prep.ltz_tuples((9,), True), await s.prep.matrix_trunc_triples((2, 3), (3,), 5),
                await s.prep.square_pairs((11,))]

    res = run_all(ss, job)
    assert [(s.prep.stats.rounds, s.prep.stats.bytes_sent) for s in ss] == counts
    rec = lambda k, j: reconstruct(sch, [r[k][j] for r in res])  # noqa: E731
    assert (rec(0, 0) * rec(0, 1) == rec(0, 2)).all()
    assert (rec(1, 0) @ rec(1, 1) == rec(1, 2)).all()
    a, b, c = (np.bitwise_xor.reduce([r[3][i] for r in res]) for i in range(3))
    assert (a[None, :] & b == c).all()
    assert (rec(6, 0) * rec(6, 0) == rec(6, 1)).all()


def _cot_agrees(broken: bool) -> bool:
    """`_finish_add`'s kernels against numpy: tau = h0 + x - h1, kept = -h0, h + r * tau;
    the outputs of both sides add up to r * x. Broken: receiver ignores its choice bits."""
    rng = np.random.default_rng(6)
    for m, M in ((1, 1), (8, 1), (1000, 1), (64, 5)):
        h0, h1, x = (rng.integers(0, 1 << 64, (m, M), dtype=_U64) for _ in range(3))
        r = rng.integers(0, 2, m, dtype=np.uint8)
        tau, kept = np.empty_like(h0), np.empty_like(h0)
        _ot_jit.cot_send(h0, h1, x, tau, kept)
        h = h1.copy()  # the receiver's H(t) is H(q ^ r s): h1 where r = 1, else h0
        h[r == 0] = h0[r == 0]
        _ot_jit.cot_recv(h, tau, np.ones(m, np.uint8) if broken else r)
        if not (np.array_equal(tau, h0 + x - h1) and np.array_equal(kept, -h0)):
            return False
        if not np.array_equal(h + kept, x * r[:, None].astype(_U64)):
            return False
    return True


def test_cot_kernels_match_numpy():
    assert _cot_agrees(False)


def test_cot_broken_variant_is_caught():
    assert not _cot_agrees(True)


def _expand_agrees(make) -> bool:
    """Base-OT seed expansion == CryptoRNG's stream for the same key, over several calls
    (the stream position carries on), including empty and odd lengths."""
    from protocols.prg import CryptoRNG

    keys = [bytes([i]) * 32 for i in range(5)]
    mine, ref = [make(k) for k in keys], [CryptoRNG(k) for k in keys]
    for nb in (16, 0, 3, 1000, 40000, 8):
        got = _otext._expand(mine, nb)
        want = np.stack([g.fill(np.empty(nb, np.uint8)) for g in ref])
        if not np.array_equal(got, want):
            return False
    return True


def test_seed_expansion_is_cryptorng_stream():
    assert _expand_agrees(_otext._SeedPRG)


def test_seed_expansion_broken_variant_is_caught():
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    class Shifted(_otext._SeedPRG):  # counter starting at 1: a different stream
        def __init__(self, key):
            self._enc = Cipher(algorithms.AES(key), modes.CTR(b"\0" * 15 + b"\1")).encryptor()

    assert not _expand_agrees(Shifted)


def _fused_agrees(rows: int, monkeypatch, broken: bool = False) -> bool:
    """The kernels that fold the TMMO blocks as they read them (`*_h`, fed by
    `_hash_blocks` / `_hash2_blocks`) == the unfused kernels on `_hash`'s output, for
    Gilboa and the additive correlated OTs, with blocks of `rows` rows (crossing every
    edge). Broken: each block's rows taken as starting at 0 (its offset ignored)."""
    monkeypatch.setattr(_otext, "_HASH_ROWS", rows)
    rng = np.random.default_rng(rows)
    aes = _otext._AES(bytes(range(16)))
    off = (lambda lo: 0) if broken else (lambda lo: lo)
    for L, M in ((1, 1), (3, 2), (2, 5), (5, 11)):
        m = 64 * L
        q = rng.integers(0, 256, (m, 16), dtype=np.uint8)
        s = rng.integers(0, 256, 16, dtype=np.uint8)
        base = int(rng.integers(0, 1 << 40))
        x = rng.integers(0, 1 << 64, (L, M), dtype=_U64)
        r = rng.integers(0, 2, m, dtype=np.uint8)
        h0, h1 = _otext._hash(aes, q, base, M), _otext._hash(aes, q ^ s[None, :], base, M)
        raw_ref = np.empty(L * M * ot._TIER_BYTES, dtype=np.uint8)
        acc_ref = np.zeros((L, M), dtype=_U64)
        _ot_jit.gilboa_send(h0, h1, x, *ot._tier_views(raw_ref, L, M), acc_ref)
        _ot_jit.gilboa_recv(h1, *ot._tier_views(raw_ref, L, M), r, acc_ref)
        raw = np.empty_like(raw_ref)
        acc = np.zeros((L, M), dtype=_U64)
        for lo, e0, p0, e1, p1 in _otext._hash2_blocks(aes, q, s, base, M):
            _ot_jit.gilboa_send_h(e0, p0, e1, p1, off(lo), x, *ot._tier_views(raw, L, M), acc)
        for lo, e, p in _otext._hash_blocks(aes, q ^ s[None, :], base, M):
            _ot_jit.gilboa_recv_h(e, p, off(lo), *ot._tier_views(raw, L, M), r, acc)
        if not (np.array_equal(raw, raw_ref) and np.array_equal(acc, acc_ref)):
            return False
        # additive correlated OTs (x one row per OT)
        xm = rng.integers(0, 1 << 64, (m, M), dtype=_U64)
        tau_ref, kept_ref = np.empty_like(h0), np.empty_like(h0)
        _ot_jit.cot_send(h0, h1, xm, tau_ref, kept_ref)
        out_ref = h1.copy()
        _ot_jit.cot_recv(out_ref, tau_ref, r)
        tau, kept, out = np.empty_like(h0), np.empty_like(h0), np.empty_like(h0)
        for lo, e0, p0, e1, p1 in _otext._hash2_blocks(aes, q, s, base, M):
            _ot_jit.cot_send_h(e0, p0, e1, p1, off(lo), xm, tau, kept)
        for lo, e, p in _otext._hash_blocks(aes, q ^ s[None, :], base, M):
            _ot_jit.cot_recv_h(e, p, off(lo), tau, r, out)
        if not all(np.array_equal(a, b) for a, b in ((tau, tau_ref), (kept, kept_ref), (out, out_ref))):
            return False
    return True


@pytest.mark.parametrize("rows", [_otext._HASH_ROWS, 7, 1])
def test_fused_hash_kernels_match_unfused(rows, monkeypatch):
    assert _fused_agrees(rows, monkeypatch)


def test_fused_hash_kernels_broken_variant_is_caught(monkeypatch):
    assert not _fused_agrees(7, monkeypatch, broken=True)


def _bitwords_agree(fn) -> bool:
    rng = np.random.default_rng(8)
    for L, M, k in ((1, 1, 1), (3, 1, 64), (2, 2, 65), (5, 3, 130), (4, 1, 7)):
        h = rng.integers(0, 1 << 64, (64 * L, M), dtype=_U64)
        if not np.array_equal(fn(h, L, k), _otext._bitwords_np(h, L, k)):
            return False
    return True


def test_bitwords_kernel_matches_numpy():
    assert _bitwords_agree(_otext._bitwords)


def test_bitwords_broken_variant_is_caught():
    def broken(h, L, k):  # bit order within the word reversed
        out = _otext._bitwords(h, L, k)
        return np.array([[int(f"{int(w):064b}"[::-1], 2) for w in row] for row in out], dtype=_U64)

    assert not _bitwords_agree(broken)


def _iknp_agrees(block: int, monkeypatch, broken: bool = False) -> bool:
    """The blockwise IKNP matrices (`_iknp_receiver` / `_iknp_sender`: expansion, XORs in the
    cipher, transpose per column block of `block` bytes) == the whole-stream reference, for
    sizes crossing the block edges and on both kernels' paths, over successive calls (the
    seed streams carry on), and the IKNP relation q_l = t_l ^ r_l s holds. Broken: the
    sender's rows with s_l = 1 get u from the next block (a block offset error)."""
    monkeypatch.setattr(_otext, "_EXT_BLOCK", block)
    rng = np.random.default_rng(block)
    k0 = [bytes(rng.integers(0, 256, 32, dtype=np.uint8)) for _ in range(_otext.KAPPA)]
    k1 = [bytes(rng.integers(0, 256, 32, dtype=np.uint8)) for _ in range(_otext.KAPPA)]
    s = rng.integers(0, 2, _otext.KAPPA).astype(np.uint8)
    mine = [bytes(a if not b else c) for a, c, b in zip(k0, k1, s, strict=True)]  # sender's k_{s_l}
    R, Rr = _otext._Receiver(list(zip(k0, k1, strict=True))), _otext._Receiver(list(zip(k0, k1, strict=True)))
    S, Sr = _otext._Sender(s, mine), _otext._Sender(s, mine)
    for m in (8, 64, 520, 8 * 3 * block + 64, 8 * block, 4096):
        r = rng.integers(0, 2, m).astype(np.uint8)
        u, t = _otext._iknp_receiver(R, r)
        u_ref, t_ref = _otext._iknp_receiver_np(Rr, r)
        u.setflags(write=False)  # received arrays are read-only
        u_in = np.roll(u, -block, axis=1) if broken else u
        q, q_ref = _otext._iknp_sender(S, u_in, m), _otext._iknp_sender_np(Sr, u_ref, m)
        if not (np.array_equal(u, u_ref) and np.array_equal(t, t_ref) and np.array_equal(q, q_ref)):
            return False
        if not np.array_equal(q, t ^ (r[:, None] * np.packbits(s)[None, :])):
            return False
    return R.ctr == S.ctr == Rr.ctr == Sr.ctr


@pytest.mark.parametrize("block", [_otext._EXT_BLOCK, 64, 8, 3])
def test_blockwise_iknp_matches_reference(block, monkeypatch):
    assert _iknp_agrees(block, monkeypatch)


def test_blockwise_iknp_broken_variant_is_caught(monkeypatch):
    assert not _iknp_agrees(64, monkeypatch, broken=True)
