"""The rss3 source (protocols.preprocessing.rss3, replicated sharing for 3 parties): every kind
reconstructs with the dealer's exact relation; broken variants (a missing zero sharing, a
missing mask, a wrong cross term) are caught; a single party's received words are uniform
and its view does not contain another party's handed-out share; exact offline rounds and
bytes; the 3-round comparison and logistic training run on it; a TCP-process run; n != 3
and the Shamir scheme are refused with a typed error."""

import asyncio

import numpy as np
import pytest
from preprocessing_helpers import make_scheme, run_all, sessions

from mpc.local import run_local
from protocols import comparison, core
from protocols.comparison import ltz_tuple_values
from protocols.comparison.ring3 import _MONO
from protocols.errors import ConfigError, ParameterError, PreprocessingExhausted
from protocols.preprocessing import _rss3core
from protocols.preprocessing._rss3core import Replicated
from protocols.preprocessing.rss3 import RSS3Preprocessing

pytestmark = pytest.mark.timeout(120)
U = np.uint64
LOW63 = U(2**63 - 1)


def rss_sessions(seed=7, **kw):
    sch = make_scheme("additive", 3)
    return sch, sessions(3, sch, lambda s: RSS3Preprocessing(s, **kw), seed=seed)


def _xor(parts):
    out = parts[0].copy()
    for p in parts[1:]:
        out ^= p
    return out


def _add(parts):
    out = parts[0].copy()
    for p in parts[1:]:
        out += p
    return out


def _arr(res, key, i):
    return [r[key][i] for r in res]


async def _every_kind(s):
    P = s.prep
    return {
        "tr": await P.triples((5, 7)),
        "sq": await P.square_pairs((9,)),
        "mt": await P.matrix_triples((4, 3), (3,)),
        "mt2": await P.matrix_triples((4, 3), (3, 2)),
        "bits": (await P.bits((300,)),),
        "rand": (await P.randoms((4,)),),
        "dab": await P.dabits((100,)),
        "eda": await P.edabits((50,), 64),
        "eda20": await P.edabits((50,), 20),
        "tt": await P.trunc_triples((3, 50), 16),
        "tp": await P.trunc_pairs((50,), 16, 40),
        "br": (await P.bounded_randoms((50,), 30),),
        "bt": await P.bool_triples((6,), 3),
        "ltz": await P.ltz_tuples((2, 30), True),  # beyond one chunk: pooled refill
        "ltz0": await P.ltz_tuples((17,), False),
        "ltz1": await P.ltz_tuples((), True),
        "mtt": await P.matrix_trunc_triples((5, 4), (4,), 36),
        "mtt2": await P.matrix_trunc_triples((5, 4), (4,), 36),  # same batch
        "mtt3": await P.matrix_trunc_triples((3, 2), (2,), 16),
    }


def ltz_ok(items, mul: bool) -> bool:
    """Every array of the reconstructed item is ltz_tuple_values of its own words (whole
    words, as the dealer)."""
    r = _add([it[0] for it in items])
    words = [r] + [_xor([it[i] for it in items]) for i in (3, 4, 6, 7)]
    if mul:
        words.append(_add([it[10] for it in items]))
    want = ltz_tuple_values(*words)
    if len(want) != len(items[0]):
        return False
    for i, (v, how) in enumerate(want):
        got = (_add if how == "a" else _xor)([it[i] for it in items])
        if got.shape != v.shape or not (got == v).all():
            return False
    return True


def mtt_ok(items, f: int) -> bool:
    A, B, C, r, r_hi, r_msb, AR, AM = (_add([it[i] for it in items]) for i in range(8))
    return bool(
        (A @ B == C).all() and (r_hi == (r & LOW63) >> U(f)).all() and (r_msb == r >> U(63)).all()
        and (A @ r_hi == AR).all() and (A * r_msb[None, :] == AM).all()
    )


def relations(res) -> dict[str, bool]:
    """kind -> whether the reconstructed items satisfy the dealer's relation."""
    ok = {}
    a, b, c = (_add(_arr(res, "tr", i)) for i in range(3))
    ok["triples"] = bool((a * b == c).all())
    a, c = (_add(_arr(res, "sq", i)) for i in range(2))
    ok["square_pairs"] = bool((a * a == c).all())
    ok["matrix_triples"] = all(
        bool((A @ B == C).all()) for A, B, C in ([_add(_arr(res, k, i)) for i in range(3)] for k in ("mt", "mt2"))
    )
    b = _add(_arr(res, "bits", 0))
    ok["bits"] = bool(((b == 0) | (b == 1)).all() and 0.3 < b.mean() < 0.7)
    a, x = _add(_arr(res, "dab", 0)), _xor(_arr(res, "dab", 1))
    ok["dabits"] = bool((a == x).all() and ((a == 0) | (a == 1)).all())
    a, x = _add(_arr(res, "eda", 0)), _xor(_arr(res, "eda", 1))
    a20, x20 = _add(_arr(res, "eda20", 0)), _xor(_arr(res, "eda20", 1))
    ok["edabits"] = bool((a == x).all() and (a20 == x20).all() and (a20 < 2**20).all() and (a >= 2**62).any())
    r, hi, msb = (_add(_arr(res, "tt", i)) for i in range(3))
    ok["trunc_triples"] = bool((hi == (r & LOW63) >> U(16)).all() and (msb == r >> U(63)).all())
    r, hi = (_add(_arr(res, "tp", i)) for i in range(2))
    ok["trunc_pairs"] = bool((r < 2**40).all() and (hi == r >> U(16)).all() and (r >= 2**38).any())
    v = _add(_arr(res, "br", 0))
    ok["bounded_randoms"] = bool((v < 2**30).all() and (v >= 2**28).any())
    a, b, c = (_xor(_arr(res, "bt", i)) for i in range(3))
    ok["bool_triples"] = bool((a[None] & b == c).all() and b.shape == (3, 6))
    ok["ltz_tuples"] = ltz_ok([r["ltz"] for r in res], True) and ltz_ok([r["ltz0"] for r in res], False) \
        and ltz_ok([r["ltz1"] for r in res], True)
    ok["matrix_trunc_triples"] = mtt_ok([r["mtt"] for r in res], 36) and mtt_ok([r["mtt2"] for r in res], 36) \
        and mtt_ok([r["mtt3"] for r in res], 16)
    return ok


def test_every_kind_reconstructs_with_the_exact_relation():
    _, ss = rss_sessions(word_chunk=40, ltz_chunk=25, mat_words=40)
    res = run_all(ss, _every_kind)
    ok = relations(res)
    assert set(ok) | {"randoms"} == set(RSS3Preprocessing.SUPPLIES)
    assert all(ok.values()), ok
    assert all(ss[0].prep.supports(k) for k in RSS3Preprocessing.SUPPLIES)
    assert not ss[0].prep.supports("double_randoms")  # Shamir only
    # shapes are the dealer's
    assert res[0]["ltz"][2].shape == (len(_MONO[1]), 2, 30) and res[0]["ltz"][9].shape == (len(_MONO[3]), 2, 30)
    assert res[0]["ltz1"][0].shape == () and res[0]["mtt"][7].shape == (5, 4)


class _Zeros:
    """A stream that outputs zeros (a broken PRF: the mask or zero sharing it feeds is gone)."""

    def uint64(self, shape):
        return np.zeros(shape, U)


def _break_streams(monkeypatch, labels):
    real = Replicated.streams

    def streams(self, label):
        g = real(self, label)
        return (_Zeros(), _Zeros()) if label in labels else g

    monkeypatch.setattr(Replicated, "streams", streams)


def _drop_term(name):
    def mul(x, y):
        return x[0] * (y[0] + y[1])  # x_1 y_0 missing

    def and_(x, y):
        return x[0] & (y[0] ^ y[1])

    def matmul(x, y):
        return x[0] @ (y[0] + y[1])

    return {"mul_raw": mul, "and_raw": and_, "matmul_raw": matmul}[name]


@pytest.mark.parametrize("broken,caught", [
    ("mul_raw", {"triples", "square_pairs", "ltz_tuples", "matrix_trunc_triples"}),
    ("and_raw", {"bool_triples", "ltz_tuples"}),
    ("matmul_raw", {"matrix_triples", "matrix_trunc_triples"}),
    ("b2a_sign", {"bits", "dabits", "edabits", "trunc_triples", "trunc_pairs", "bounded_randoms",
                  "ltz_tuples", "matrix_trunc_triples"}),
])
def test_wrong_cross_term_breaks_the_relation(broken, caught, monkeypatch):
    """A product missing its cross term x_1 y_0 (or a bit conversion that adds 2 x c instead
    of subtracting it) makes exactly the kinds built on it fail their relation."""
    if broken == "b2a_sign":
        for name in ("b2a", "b2a_words"):
            real = getattr(Replicated, name)

            async def b2a(self, c, real=real):
                x = await real(self, c)
                return np.uint64(0) - x if self.me == 2 else x  # one party's terms negated

            monkeypatch.setattr(Replicated, name, b2a)
    else:
        monkeypatch.setattr(Replicated, broken, staticmethod(_drop_term(broken)))
    _, ss = rss_sessions(word_chunk=40, ltz_chunk=25, mat_words=40)
    ok = relations(run_all(ss, _every_kind))
    assert {k for k, v in ok.items() if not v} == caught


def _record_rand(monkeypatch):
    seen: dict[int, list] = {0: [], 1: [], 2: []}
    real = Replicated.rand

    def rand(self, shape):
        pair = real(self, shape)
        seen[self.me].append(pair)
        return pair

    monkeypatch.setattr(Replicated, "rand", rand)
    return seen


@pytest.mark.parametrize("broken", [False, True])
def test_handed_out_share_is_not_in_the_neighbours_view(broken, monkeypatch):
    """Party p - 1 holds the component p of every replicated value; the share party p hands
    to the online phase must not be that component (it is masked by a zero sharing from
    K_{p+1}, which party p - 1 misses). Without the zero sharing, party p - 1 would know party
    p's additive (and XOR) shares of every item: caught."""
    if broken:
        _break_streams(monkeypatch, {"zero", "xzero"})
    seen = _record_rand(monkeypatch)
    _, ss = rss_sessions()

    async def job(s):
        return await s.prep.triples((200,)), await s.prep.bool_triples((200,), 1)

    res = run_all(ss, job)
    leaked = 0
    for p in range(3):
        q = (p - 1) % 3  # q's pairs are (c_q, c_p): the second is p's component
        a_q, b_q = seen[q][0][1], seen[q][2][1]  # triples' a; bool_triples' a
        leaked += int((res[p][0][0] == a_q).sum()) + int((res[p][1][0] == b_q).sum())
    assert (leaked >= 1200) if broken else (leaked == 0)


def _chi2_bytes(words: np.ndarray) -> float:
    counts = np.bincount(words.view(np.uint8), minlength=256)
    exp = counts.sum() / 256
    return float(((counts - exp) ** 2 / exp).sum())


@pytest.mark.parametrize("broken", [None, "b2a", "zero"])
def test_received_words_are_uniform(broken, monkeypatch):
    """Every word a party receives offline (b2a's x - m, reshared products) is uniform:
    chi-square of its bytes over 256 bins below the 0.999 quantile (330.5 for 255 degrees of
    freedom). Without b2a's mask (the leader sends its bits in the clear) or without the zero
    sharing of a reshare (the products go out unmasked) the bytes are far from uniform."""
    if broken:
        _break_streams(monkeypatch, {broken} if broken == "b2a" else {"zero", "xzero"})
    got = {0: [], 1: [], 2: []}
    real_round, real_b2a = Replicated._round, Replicated._b2a_round

    async def rnd(self, op, send):
        out = await real_round(self, op, send)
        got[self.me].append(out)
        return out

    async def b2a_round(self, send, n_in):
        out = await real_b2a(self, send, n_in)
        got[self.me].append(out)
        return out

    monkeypatch.setattr(Replicated, "_round", rnd)
    monkeypatch.setattr(Replicated, "_b2a_round", b2a_round)
    _, ss = rss_sessions(word_chunk=256, ltz_chunk=256)

    async def job(s):
        await s.prep.ltz_tuples((256,), True)
        await s.prep.matrix_trunc_triples((8, 4), (4,), 20)

    run_all(ss, job)
    for p in range(3):
        w = np.concatenate(got[p])
        assert w.size > 10_000
        chi = _chi2_bytes(w)
        assert (chi > 1000) if broken else (chi < 330.5), (p, chi)


def test_exact_offline_rounds_and_bytes():
    """Keys: 1 round, 32 bytes. Local kinds: nothing. An edaBit-word refill of W words: 1
    round, 512 bytes per word led (party p leads words [p W/3, (p+1) W/3)). One ltz
    chunk of C elements: 5 rounds (levels 1-2 reshare, level-3 b2a, reshare of 8 bits and r63,
    two product levels) + the word refill; reshared words per element: 11 (the distinct
    degree-2 halves of levels 1-2) + 9 (8 bits and r63) + 16 (level 3's 14 monomials of
    degree >= 2, one more half and w rho, in 2 levels).
    matrix_trunc_triples: 1 round, 16 d bytes per item (r_hi, r_msb) + the words."""
    W, C = 64, 64
    _, ss = rss_sessions(word_chunk=W, ltz_chunk=C, mat_words=4 * 3)

    def led(p, m):
        return m * (p + 1) // 3 - m * p // 3

    async def job(s):
        P, out = s.prep, []
        for step in (
            lambda: P.triples((1000,)),  # first use: the keys
            lambda: P.triples((1000,)),
            lambda: P.matrix_triples((50, 20), (20, 3)),
            lambda: P.square_pairs((10,)),
            lambda: P.bool_triples((100,), 4),
            lambda: P.randoms((10,)),
            lambda: P.edabits((W,)),  # one refill
            lambda: P.ltz_tuples((C,), True),  # one refill + one chunk
            lambda: P.matrix_trunc_triples((4, 3), (3,), 20),  # reps = 1: one word refill
        ):
            before = P.stats.copy()
            await step()
            d = P.stats - before
            out.append((d.rounds, d.bytes_sent))
        return out

    for p, got in enumerate(run_all(ss, job)):
        words = 512 * led(p, W)
        assert got[0] == (1, 32)
        assert got[1:6] == [(0, 0)] * 5
        assert got[6] == (1, words)
        assert got[7] == (6, words + 8 * led(p, 8 * C) + 8 * C * (11 + 9 + 16))
        assert got[8] == (2, words + 8 * 2 * 3)


@pytest.mark.parametrize("seed", [5])
def test_three_round_comparison_on_rss3_tuples(seed):
    """ltz and ltz_mul from rss3's ltz_tuples: exact on every int64 (both ends, 0, +-1), 3
    rounds, equal to the plaintext."""
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

    for b, b2, prod, rounds in run_local(3, job, preprocessing="rss3", seed=seed).results:
        want = (xv < 0).astype(np.int64)
        assert (b == want).all() and (b2 == want).all() and (prod == want * yv).all()
        assert rounds == 3


def test_logistic_training_equals_the_dealer():
    """Dealer-free training through rss3 (in process): the dealer path's online rounds and
    accuracy, and the float model's accuracy."""
    from mpc.bench.run import measure

    got = {src: measure("logistic_regression", 2000, parties=3, source=src, epochs=2, repeat=1, seed=4)
           for src in ("trusted_dealer", "rss3")}
    assert got["rss3"]["correct"] and got["rss3"]["accuracy"] == got["trusted_dealer"]["accuracy"]
    assert got["rss3"]["rounds"] == got["trusted_dealer"]["rounds"]
    assert got["rss3"]["accuracy_diff"] == 0.0


async def _tcp_job(s):
    x = await core.input(s, s.domain.from_int(np.array([-5, 0, 7, -(2**40)])) if s.pid == 0 else None, 0)
    y = await core.input(s, s.domain.from_int(np.array([3, 4, 5, 6])) if s.pid == 1 else None, 1)
    from protocols import beaver

    b = await comparison.ltz(s, x)
    z = await beaver.mul(s, x, y)
    return [v.view(np.int64).tolist() for v in await core.open(s, b, z)]


def test_tcp_processes_run():
    from mpc.processes import run_processes

    run = run_processes(3, _tcp_job, transport="tcp", timeout=30, preprocessing="rss3")
    for res in run.results:
        assert res == [[1, 0, 0, 1], [-15, 0, 35, -6 * 2**40]]


@pytest.mark.parametrize("n,scheme", [(2, "additive"), (4, "additive"), (3, "shamir")])
def test_needs_three_parties_and_the_ring(n, scheme):
    with pytest.raises(ConfigError, match="rss3"):
        run_local(n, lambda s: asyncio.sleep(0), preprocessing="rss3", scheme=scheme)
    sch = make_scheme(scheme, n)
    with pytest.raises(ParameterError, match="3 parties|additive"):
        sessions(n, sch, RSS3Preprocessing)


def test_out_of_range_parameters_are_typed():
    _, ss = rss_sessions()

    async def job(s):
        for bad in (lambda: s.prep.trunc_triples((2,), 63), lambda: s.prep.trunc_pairs((2,), 8, 64),
                    lambda: s.prep.bounded_randoms((2,), 64), lambda: s.prep.edabits((2,), 65),
                    lambda: s.prep.bool_triples((2,), 65),
                    lambda: s.prep.matrix_trunc_triples((2, 3), (2,), 8)):
            with pytest.raises(PreprocessingExhausted):
                await bad()
        return True

    assert all(run_all(ss, job))


def test_node_config_accepts_rss3_only_for_three_additive_parties(tmp_path):
    from mpc.node.config import ConfigError as NodeConfigError
    from mpc.node.config import load_config
    from mpc.node.consortium import write_consortium

    def edit(path, old, new):
        t = path.read_text()
        assert old in t
        path.write_text(t.replace(old, new, 1))

    p = write_consortium(tmp_path / "a", 3)["configs"][0]
    edit(p, "broker =", 'preprocessing = "rss3"\nbroker =')
    assert load_config(p).preprocessing == "rss3" and load_config(p).insecure_options() == []
    for sub, n, scheme in (("b", 4, "additive"), ("c", 3, "shamir")):
        p = write_consortium(tmp_path / sub, n, scheme=scheme)["configs"][0]
        edit(p, "broker =", 'preprocessing = "rss3"\nbroker =')
        with pytest.raises(NodeConfigError, match="rss3"):
            load_config(p)


def test_items_are_fresh():
    """Two runs with different seeds share no values; the key stream counter advances."""
    outs = []
    for seed in (1, 2):
        _, ss = rss_sessions(seed=seed, ltz_chunk=32, word_chunk=32)
        res = run_all(ss, lambda s: s.prep.ltz_tuples((32,), False))
        outs.append(_add([r[0] for r in res]))
    assert not (outs[0] == outs[1]).any()
    assert _rss3core.__doc__ and "honest majority" in _rss3core.__doc__


def test_malformed_message_is_a_typed_error_on_every_party(monkeypatch):
    """Party 0 sends a bit-conversion message one word short: its receiver (party 2) raises
    FrameError and aborts; the other honest party's next exchange with it fails typed."""
    from network.errors import FrameError, SmpcError

    real = Replicated._b2a_round

    async def short(self, send, n_in):
        return await real(self, send[:-1] if self.me == 0 else send, n_in)

    monkeypatch.setattr(Replicated, "_b2a_round", short)
    _, ss = rss_sessions(word_chunk=64)

    async def job(s):
        try:
            await s.prep.edabits((64,))
            await s.prep.edabits((64,))  # the next refill needs party 2, which aborted
        except SmpcError as e:
            return e
        return None

    errs = run_all(ss, job)
    assert isinstance(errs[2], FrameError)
    assert isinstance(errs[1], SmpcError)  # both honest parties fail typed (0 is the cheater)


def test_empty_requests_give_the_dealers_empty_items():
    """review2: a request for 0 elements (a comparison or DP noise on an empty array) gave an
    untyped ValueError / IndexError from the pools; the dealer hands out empty arrays of the
    item's shapes, and so must rss3 (and the online protocols then run)."""
    from protocols.apps import dp

    _, ss = rss_sessions(word_chunk=32, ltz_chunk=16)

    async def job(s):
        P = s.prep
        items = [await P.bits((0,)), *await P.dabits((0,)), *await P.edabits((0,), 20),
                 *await P.trunc_triples((0,), 16), *await P.trunc_pairs((0,), 16, 40),
                 await P.bounded_randoms((0,), 30), *await P.ltz_tuples((0,), True),
                 *await P.ltz_tuples((2, 0), False)]
        x = s.share_of(s.domain.zeros((0,)))
        b, z = await comparison.ltz(s, x), await dp.discrete_laplace(s, (0,), 2)
        opened = await core.open(s, b, z)
        more = await P.ltz_tuples((5,), True)  # the pools still line up afterwards
        return [v.shape for v in items], [v.shape for v in opened], more

    res = run_all(ss, job)
    shapes = res[0][0]
    assert all(0 in sh for sh in shapes) and res[0][1] == [(0,), (0,)]
    assert shapes[-1][0] == len(_MONO[3]) and shapes[-1][1:] == (2, 0)
    assert ltz_ok([r[2] for r in res], True)


def _record_derivations(monkeypatch, *, stuck_counter=False):
    """Every PRSS stream a party derives: (party, key, label, call counter)."""
    seen: list[tuple[int, bytes, str, int]] = []
    def streams(self, label):
        c = 0 if stuck_counter else self._calls
        self._calls += 1
        seen.extend((self.me, k, label, c) for k in self._keys)
        return tuple(_rss3core.CryptoRNG(_rss3core.derive_key(k, "rss3", label, c))
                     for k in self._keys)

    monkeypatch.setattr(Replicated, "streams", streams)
    return seen


@pytest.mark.parametrize("broken", [False, True])
def test_prss_keys_are_pairwise_and_no_stream_is_derived_twice(broken, monkeypatch):
    """review2 (item 1, sound; a guard): key K_j is held by parties j and j - 1 only, the
    three keys differ, and no party derives the stream of one (key, label, counter) twice
    across every kind (randoms, zero sharings, b2a masks), so no mask or zero sharing is
    reused. Two runs of the same session id with OS randomness (seed None, as the node)
    share no key. Broken: a counter that does not advance is caught."""
    seen = _record_derivations(monkeypatch, stuck_counter=broken)
    _, ss = rss_sessions(word_chunk=40, ltz_chunk=25, mat_words=40)
    run_all(ss, _every_kind)
    keys = {p: {k for q, k, _, _ in seen if q == p} for p in range(3)}
    assert all(len(v) == 2 for v in keys.values()) and len(set().union(*keys.values())) == 3
    for p in range(3):  # party p holds K_p and K_{p+1}: each key shared by one pair only
        shared = keys[p] & keys[(p + 1) % 3]
        assert len(shared) == 1 and not (shared & keys[(p + 2) % 3])
    assert (len(set(seen)) != len(seen)) == broken
    if not broken:
        runs = []
        for _ in range(2):
            seen.clear()
            ss = sessions(3, make_scheme("additive", 3), RSS3Preprocessing, seed=None)
            run_all(ss, lambda s: s.prep.triples((4,)))
            runs.append({k for _, k, _, _ in seen})
        assert not runs[0] & runs[1]
