"""The dealer node: correctness of every item kind for n in {2, 3, 5} (the trusted dealer's
relations and formats), seed compression (parties 1..n-1 receive only their seed; party 0
exactly the corrections the docstring's bandwidth table says), distribution of party 0's
corrections (arithmetic and XOR), chunked requests, fields, and Beaver end to end."""

import asyncio
import dataclasses
import functools

import numpy as np
import pytest
from preprocessing_helpers import make_scheme, reconstruct

from network.memory import MemoryNetwork
from protocols import beaver, core
from protocols.preprocessing.dealer_node import DealerClient, DealerNode
from protocols.prg import CryptoRNG
from protocols.session import CountingChannel, Session, Stats

pytestmark = pytest.mark.timeout(60)


def setup(n, batch=256, sch=None):
    sch = sch or make_scheme("additive", n)
    dnet = MemoryNetwork(n + 1, timeout=20)
    counters = [Stats() for _ in range(n)]
    clients = [DealerClient(p, n, sch.domain, CountingChannel(dnet.channel(p), counters[p]), n, batch=batch)
               for p in range(n)]
    node = DealerNode(dnet.channel(n), n, sch.domain, CryptoRNG.from_seed(3, "dealer"), batch=batch)
    return sch, node, clients, counters


def run_with_dealer(node, clients, job):
    async def main():
        serving = asyncio.create_task(node.serve())
        out = await asyncio.gather(*(job(c) for c in clients))
        await clients[0].close()
        await serving
        return out

    return asyncio.run(main())


@pytest.mark.parametrize("n", [2, 3, 5])
def test_all_kinds_and_seed_compression(n):
    sch, node, clients, counters = setup(n)

    async def job(c):
        return (
            await c.triples((10, 30)),  # more than one streamed batch
            await c.square_pairs((17,)),
            (await c.bits((500,)),),
            await c.matrix_triples((6, 4), (4, 3)),
            await c.trunc_pairs((40,), 8, 40),
            (await c.randoms((4,)),),
            await c.triples((5,)),
        )

    res = run_with_dealer(node, clients, job)
    rec = lambda k, j: reconstruct(sch, [r[k][j] for r in res])  # noqa: E731
    a, b, c = rec(0, 0), rec(0, 1), rec(0, 2)
    assert (a * b == c).all()
    a, b, c = rec(6, 0), rec(6, 1), rec(6, 2)
    assert (a * b == c).all()
    a, a2 = rec(1, 0), rec(1, 1)
    assert (a * a == a2).all()
    bits = rec(2, 0)
    assert set(np.unique(bits).tolist()) == {0, 1} and 180 < int(bits.sum()) < 320
    A, B, C = rec(3, 0), rec(3, 1), rec(3, 2)
    assert (A @ B == C).all()
    r, rf = rec(4, 0), rec(4, 1)
    assert (r < (1 << 40)).all() and (r >> np.uint64(8) == rf).all()
    for p in range(1, n):  # parties 1..n-1: the seed and nothing else
        assert counters[p].messages_received == 1 and counters[p].bytes_received == 32
        assert counters[p].bytes_sent == 0


@pytest.mark.parametrize("broken", [False, True])
def test_party0_corrections_look_uniform(broken, monkeypatch):
    """Party 0 sees c_0 = c - sum c_p: uniform whatever the triples. Broken variant: parties
    >= 1 expand zeros for their dealt shares, so party 0's correction is c = a*b itself,
    whose low bit is 1 only a quarter of the time; the test must fail."""
    from protocols.preprocessing import dealer_node as dn

    if broken:
        orig = dn._Expander.draw

        def draw(self, comps, party):
            out = orig(self, comps, party)
            return [np.zeros_like(v) if (v is not None and not f) else v
                    for v, (_, _, f) in zip(out, comps, strict=True)]

        monkeypatch.setattr(dn._Expander, "draw", draw)
    sch, node, clients, _ = setup(3, batch=4096)
    res = run_with_dealer(node, clients, lambda c: c.triples((4096,)))
    low = int((res[0][2] & np.uint64(1)).sum())
    assert (abs(low - 2048) < 200) != broken  # fair bit: sigma 32


def test_beaver_end_to_end():
    n = 3
    sch, node, clients, _ = setup(n)
    D = sch.domain
    net = MemoryNetwork(n, timeout=20)
    g = np.random.default_rng(4)  # plaintext test data only
    X, Y, M = g.integers(-1000, 1000, (4, 3)), g.integers(-1000, 1000, (4, 3)), g.integers(-1000, 1000, (3, 2))

    async def job(c):
        st = Stats()
        s = Session(pid=c.pid, n=n, domain=D, scheme=sch, channel=CountingChannel(net.channel(c.pid), st),
                    prep=c, rng=CryptoRNG.from_seed(1, c.pid), stats=st)
        s = dataclasses.replace(s)
        x = await core.input(s, D.from_int(X) if s.pid == 0 else None, 0)
        y = await core.input(s, D.from_int(Y) if s.pid == 1 else None, 1)
        m = await core.input(s, D.from_int(M) if s.pid == 2 else None, 2)
        return await core.open(s, await beaver.mul(s, x, y), await beaver.matmul(s, x, m))

    for z, w in run_with_dealer(node, clients, job):
        assert (z.view(np.int64) == X * Y).all() and (w.view(np.int64) == X @ M).all()


BAD_REQUESTS = [
    b"not json",
    b"[1, 2]",
    b'{"kind": "triples"}',
    b'{"kind": ["triples"], "args": [[2]]}',
    b'{"kind": "nope", "args": [[2]]}',
    b'{"kind": "triples", "args": 5}',
    b'{"kind": "triples", "args": []}',
    b'{"kind": "triples", "args": [5]}',
    b'{"kind": "triples", "args": [[-1]]}',
    b'{"kind": "triples", "args": [[2.5]]}',
    b'{"kind": "triples", "args": [[true]]}',
    b'{"kind": "triples", "args": [["3"]]}',
    b'{"kind": "triples", "args": [[100000, 100000]]}',
    b'{"kind": "bits", "args": [[1, 1, 1, 1, 1, 1, 1, 1, 1]]}',
    b'{"kind": "bits", "args": [[99999999999999999999999]]}',
    b'{"kind": "trunc_pairs", "args": [[4], 8, 65]}',
    b'{"kind": "trunc_pairs", "args": [[4], 70, 64]}',
    b'{"kind": "trunc_pairs", "args": [[4], -3, 40]}',
    b'{"kind": "trunc_pairs", "args": [[4], 0, 40]}',
    b'{"kind": "trunc_pairs", "args": [[4], 8, "40"]}',
    b'{"kind": "matrix_triples", "args": [[3, 4], [5, 2]]}',
    b'{"kind": "matrix_triples", "args": [[4096, 1], [1, 4097]]}',
    b'{"kind": "matrix_triples", "args": [[3, 4]]}',
    # the kinds of the truncation, comparison and boolean protocols
    b'{"kind": "randoms", "args": [[2]]}',
    b'{"kind": "trunc_triples", "args": [[4], 63]}',
    b'{"kind": "trunc_triples", "args": [[4], 0]}',
    b'{"kind": "trunc_triples", "args": [[4]]}',
    b'{"kind": "bounded_randoms", "args": [[4], 65]}',
    b'{"kind": "bounded_randoms", "args": [[4], 0]}',
    b'{"kind": "edabits", "args": [[4], 1]}',
    b'{"kind": "dabits", "args": [{"a": 1}]}',
    b'{"kind": "bool_triples", "args": [[4], 0]}',
    b'{"kind": "bool_triples", "args": [[4], 65]}',
    b'{"kind": "bool_triples", "args": [[4], true]}',
    b'{"kind": "bool_triples", "args": [[1048576], 64]}',
    b'{"kind": "ltz_tuples", "args": [[4], 1]}',
    b'{"kind": "ltz_tuples", "args": [[4], "true"]}',
    b'{"kind": "ltz_tuples", "args": [[1048576], false]}',
    b'{"kind": "matrix_trunc_triples", "args": [[3, 4], [4, 2], 16]}',
    b'{"kind": "matrix_trunc_triples", "args": [[3, 4], [4], 63]}',
    b'{"kind": "matrix_trunc_triples", "args": [[3, 4], [5], 16]}',
    b'{"kind": "matrix_trunc_triples", "args": [[3, 4], [4]]}',
]


@pytest.mark.parametrize("raw", BAD_REQUESTS)
def test_malformed_requests_are_frame_errors(raw):
    """Requests come from the wire: every malformed one ends the dealer with FrameError
    (never TypeError, a negative shift or a huge allocation), and party 0 fails fast."""
    from network.errors import FrameError, SmpcError

    sch, node, clients, _ = setup(2)

    async def main():
        serving = asyncio.create_task(node.serve())
        await clients[0]._start()
        await clients[0].ch.send(clients[0].dealer, "dealer-req#0", raw)
        with pytest.raises(FrameError):
            await serving
        with pytest.raises(SmpcError):  # the dealer is gone: party 0's next item fails fast
            await clients[0].ch.recv_bytes(clients[0].dealer, "dealer-resp#0.0", max_len=8)

    asyncio.run(main())


def test_largest_allowed_request_is_served():
    from protocols.preprocessing import dealer_node as dn

    sch, node, clients, _ = setup(2)
    res = run_with_dealer(node, clients, lambda c: c.trunc_pairs((3, 0, 2), 63, 64))
    assert res[0][0].shape == (3, 0, 2)
    assert dn._shape_arg([dn.MAX_ELEMENTS]) == (dn.MAX_ELEMENTS,)


# -- every kind of base.KINDS, against the trusted dealer's relations and formats ----------

from protocols.comparison import ltz_tuple_values  # noqa: E402
from protocols.errors import PreprocessingExhausted  # noqa: E402
from protocols.preprocessing.base import KINDS  # noqa: E402
from protocols.preprocessing.trusted_dealer import InsecureTrustedDealer  # noqa: E402

U = np.uint64
LOW63 = U((1 << 63) - 1)

#: (kind, args) of one request each; every kind of base.KINDS at least once
CALLS = [
    ("triples", ((10, 30),)),  # more than one streamed batch
    ("square_pairs", ((17,),)),
    ("bits", ((500,),)),
    ("matrix_triples", ((6, 4), (4, 3))),
    ("trunc_pairs", ((40,), 8, 40)),
    ("randoms", ((4,),)),
    ("trunc_triples", ((3, 5), 16)),
    ("bounded_randoms", ((20,), 41)),
    ("edabits", ((7,),)),
    ("dabits", ((300,),)),
    ("bool_triples", ((6,), 3)),
    ("ltz_tuples", ((2, 3), False)),
    ("ltz_tuples", ((5,), True)),
    ("matrix_trunc_triples", ((4, 3), (3,), 16)),
    ("triples", ((5,),)),
    ("matrix_triples", ((5, 2), (2,))),
]


def hows(kind, args):
    """How the trusted dealer shares each array of an item ("a" additive, "x" XOR), from
    its code and comparison.ltz_tuple_values (not from the module under test)."""
    if kind in ("edabits", "dabits"):
        return "ax"
    if kind == "bool_triples":
        return "xxx"
    if kind == "ltz_tuples":
        w = [np.zeros(1, U)] * (6 if args[1] else 5)
        return "".join(h for _, h in ltz_tuple_values(*w))
    return None  # all additive


def as_tuple(item):
    return tuple(item) if isinstance(item, tuple | list) else (item,)


def open_item(sch, kind, args, per_party):
    """The values of one item from every party's shares."""
    items = [as_tuple(x) for x in per_party]
    how = hows(kind, args) or "a" * len(items[0])
    out = []
    for j, h in enumerate(how):
        parts = [it[j] for it in items]
        out.append(reconstruct(sch, parts) if h == "a" else functools.reduce(np.bitwise_xor, parts))
    return out


def check_relation(kind, args, v):
    """The trusted dealer's correlation of each kind (trusted_dealer.py)."""
    if kind == "triples":
        assert (v[0] * v[1] == v[2]).all()
    elif kind == "square_pairs":
        assert (v[0] * v[0] == v[1]).all()
    elif kind == "bits":
        assert set(np.unique(v[0]).tolist()) <= {0, 1} and 0.35 < v[0].mean() < 0.65
    elif kind in ("matrix_triples",):
        assert (v[0] @ v[1] == v[2]).all()
    elif kind == "trunc_pairs":
        _, f, bits = args
        assert (v[0] < U(1 << bits)).all() and (v[0] >> U(f) == v[1]).all()
    elif kind == "trunc_triples":
        f = args[1]
        assert ((v[0] & LOW63) >> U(f) == v[1]).all() and (v[0] >> U(63) == v[2]).all()
    elif kind == "bounded_randoms":
        assert (v[0] < U(1 << args[1])).all() and v[0].max() >= U(1 << (args[1] - 2))
    elif kind == "edabits":
        assert (v[0] == v[1]).all()
    elif kind == "dabits":
        assert (v[0] == v[1]).all() and set(np.unique(v[0]).tolist()) == {0, 1}
    elif kind == "bool_triples":
        assert v[1].shape == (args[1], *args[0]) and (v[0][None] & v[1] == v[2]).all()
    elif kind == "ltz_tuples":
        rho = [v[10]] if args[1] else []
        want = ltz_tuple_values(v[0], v[3], v[4], v[6], v[7], *rho)
        assert len(want) == len(v)
        for got, (w, _) in zip(v, want, strict=True):
            assert got.shape == w.shape and (got == w).all()
    elif kind == "matrix_trunc_triples":
        A, B, C, r, r_hi, r_msb, AR, AM = v
        f = args[2]
        assert (A @ B == C).all() and ((r & LOW63) >> U(f) == r_hi).all() and (r >> U(63) == r_msb).all()
        assert (A @ r_hi == AR).all() and (A * r_msb == AM).all()


#: party 0's received words per item, as the module docstring's bandwidth table says
def party0_words(kind, args):
    if kind == "matrix_triples":
        (k, _), y = args
        return k * (y[1] if len(y) == 2 else 1)
    if kind == "matrix_trunc_triples":
        (k, d), _, _ = args
        return k * d + 2 * k + 2 * d
    N = int(np.prod(args[0]))
    per = {"square_pairs": 1, "bits": 1, "randoms": 0, "bounded_randoms": 1, "trunc_pairs": 2,
           "trunc_triples": 2, "edabits": 1, "dabits": 2}
    if kind == "bool_triples":
        return args[1] * N
    if kind == "ltz_tuples":
        return (81 if args[1] else 57) * N
    return per[kind] * N


def trusted_items(sch, calls):
    dealer = InsecureTrustedDealer(sch, CryptoRNG.from_seed(9, "td"))

    async def main():
        out = []
        for kind, args in calls:
            out.append([await getattr(dealer.for_party(p), kind)(*args) for p in range(sch.n)])
        return out

    return asyncio.run(main())


@pytest.mark.parametrize("n", [2, 3, 5])
def test_every_kind_relations_formats_and_bandwidth(n):
    assert {k for k, _ in CALLS} == set(KINDS)
    sch, node, clients, counters = setup(n)

    async def job(c):
        return [await getattr(c, kind)(*args) for kind, args in CALLS]

    res = run_with_dealer(node, clients, job)
    ref = trusted_items(sch, CALLS)
    for i, (kind, args) in enumerate(CALLS):
        mine, theirs = as_tuple(res[0][i]), as_tuple(ref[i][0])
        assert [(a.shape, a.dtype) for a in mine] == [(a.shape, a.dtype) for a in theirs], kind
        check_relation(kind, args, open_item(sch, kind, args, [r[i] for r in res]))
    for p in range(1, n):  # parties 1..n-1: the seed and nothing else
        assert counters[p].messages_received == 1 and counters[p].bytes_received == 32
        assert counters[p].bytes_sent == 0
    streamed = 2 * 256  # 300 + 5 triples from batches of 256
    words = streamed + sum(party0_words(k, a) for k, a in CALLS if k != "triples")
    assert counters[0].bytes_received == 32 + 8 * words


def test_chunked_requests(monkeypatch):
    """Items above CHUNK_WORDS are fetched in chunks of the flattened shape (every party
    alike) and joined: same relations, same formats."""
    from protocols.preprocessing import dealer_node as dn

    monkeypatch.setattr(dn, "CHUNK_WORDS", 500)
    calls = [("ltz_tuples", ((4, 9), True)), ("trunc_triples", ((3, 100), 20)), ("bool_triples", ((70,), 5)),
             ("dabits", ((3, 2, 200),)), ("ltz_tuples", ((1,), False))]
    sch, node, clients, counters = setup(3)
    res = run_with_dealer(node, clients, lambda c: _seq(c, calls))
    ref = trusted_items(sch, calls)
    for i, (kind, args) in enumerate(calls):
        assert [a.shape for a in as_tuple(res[1][i])] == [a.shape for a in as_tuple(ref[i][1])]
        check_relation(kind, args, open_item(sch, kind, args, [r[i] for r in res]))
    assert counters[1].messages_received == 1 and counters[2].messages_received == 1
    assert counters[0].messages_sent > len(calls) + 10  # it did split


async def _seq(c, calls):
    return [await getattr(c, kind)(*args) for kind, args in calls]


@pytest.mark.parametrize("field", ["m61", "m127"])
def test_fields(field):
    """On a field: the arithmetic kinds (bounded randoms and truncation pairs with limbs above
    64 bits on GF(2^127 - 1)); the Z_2^64-only kinds raise PreprocessingExhausted on every
    party with nothing sent, so the protocols fall back alike."""
    from protocols.arith.field import Mersenne61, Mersenne127
    from protocols.sharing.schemes import AdditiveScheme

    D = Mersenne61() if field == "m61" else Mersenne127()
    bits = 60 if field == "m61" else 100
    sch = AdditiveScheme(D, 3)
    calls = [("triples", ((300,),)), ("square_pairs", ((5,),)), ("bits", ((200,),)),
             ("matrix_triples", ((3, 2), (2, 2))), ("bounded_randoms", ((50,), bits)),
             ("trunc_pairs", ((50,), 20, bits))]
    _, node, clients, counters = setup(3, sch=sch)

    async def job(c):
        out = await _seq(c, calls)
        for kind, args in [("edabits", ((3,),)), ("ltz_tuples", ((3,), False)), ("trunc_triples", ((3,), 8)),
                           ("matrix_trunc_triples", ((2, 3), (3,), 8)), ("bounded_randoms", ((3,), (D.modulus - 1).bit_length()))]:
            with pytest.raises(PreprocessingExhausted):
                await getattr(c, kind)(*args)
        return out

    res = run_with_dealer(node, clients, job)
    for i, (kind, args) in enumerate(calls):
        v = [np.array([int(x) for x in np.asarray(D.to_int(a)).reshape(-1)], dtype=object).reshape(a.shape)
             for a in open_item(sch, kind, args, [r[i] for r in res])]
        if kind in ("triples", "square_pairs"):
            assert (v[-1] == (v[0] * v[1 if kind == "triples" else 0]) % D.modulus).all()
        elif kind == "bits":
            assert set(v[0].reshape(-1).tolist()) == {0, 1}
        elif kind == "matrix_triples":
            assert ((v[0].dot(v[1])) % D.modulus == v[2]).all()
        elif kind == "bounded_randoms":
            assert all(0 <= x < 1 << bits for x in v[0]) and max(v[0]) >= 1 << (bits - 3)
        else:
            assert all(x < 1 << bits and x >> 20 == y for x, y in zip(v[0], v[1], strict=True))
    assert counters[1].messages_received == 1 and counters[2].messages_received == 1


@pytest.mark.parametrize("broken", [False, True])
def test_party0_xor_corrections_look_uniform(broken, monkeypatch):
    """Party 0's XOR share of a daBit is b XOR (the others' PRG words): uniform words.
    Broken variant: parties >= 1 expand zeros for dealt components, so party 0 holds b
    itself (top bit always 0); the test must fail."""
    from protocols.preprocessing import dealer_node as dn

    if broken:
        orig = dn._Expander.draw

        def draw(self, comps, party):
            out = orig(self, comps, party)
            return [np.zeros_like(v) if (v is not None and not f) else v
                    for v, (_, _, f) in zip(out, comps, strict=True)]

        monkeypatch.setattr(dn._Expander, "draw", draw)
    sch, node, clients, _ = setup(3)
    res = run_with_dealer(node, clients, lambda c: c.dabits((4096,)))
    top = int((res[0][1] >> U(63)).sum())
    assert (abs(top - 2048) < 200) != broken  # fair bit: sigma 32


@pytest.mark.parametrize("raw", [b'{"kind": "edabits", "args": [[4]]}', b'{"kind": "ltz_tuples", "args": [[4], false]}',
                                 b'{"kind": "bounded_randoms", "args": [[4], 61]}'])
def test_field_dealer_refuses_ring_kinds_from_the_wire(raw):
    """A dealer over GF(2^61 - 1) has no XOR or 2^63 formats: such a request from the wire
    (which an honest client never sends) is a FrameError, as is a 61-bit bounded random."""
    from network.errors import FrameError
    from protocols.arith.field import Mersenne61
    from protocols.sharing.schemes import AdditiveScheme

    _, node, clients, _ = setup(2, sch=AdditiveScheme(Mersenne61(), 2))

    async def main():
        serving = asyncio.create_task(node.serve())
        await clients[0]._start()
        await clients[0].ch.send(clients[0].dealer, "dealer-req#0", raw)
        with pytest.raises(FrameError):
            await serving

    asyncio.run(main())


@pytest.mark.filterwarnings("error")
def test_zero_dimensional_items():
    """A scalar is a 0-d array: every elementwise kind of shape () comes back 0-d, in the
    trusted dealer's format (XOR words too: np.ascontiguousarray would have made them 1-d)."""
    calls = [(k, ((), *a[1:])) for k, a in CALLS if not k.startswith("matrix")]
    sch, node, clients, _ = setup(3)
    res = run_with_dealer(node, clients, lambda c: _seq(c, calls))
    ref = trusted_items(sch, calls)
    for i, (kind, args) in enumerate(calls):
        mine, theirs = as_tuple(res[0][i]), as_tuple(ref[i][0])
        assert [(a.shape, a.dtype) for a in mine] == [(a.shape, a.dtype) for a in theirs], kind
        if kind not in ("bits", "dabits", "bounded_randoms"):  # their checks are statistical
            check_relation(kind, args, open_item(sch, kind, args, [r[i] for r in res]))
