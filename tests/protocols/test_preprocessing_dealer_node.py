"""The dealer node: correctness of every item kind for n in {2, 3, 5}, seed compression
(parties 1..n-1 receive only their seed), distribution of party 0's corrections, and Beaver
end to end."""

import asyncio
import dataclasses

import numpy as np
import pytest
from preprocessing_helpers import make_scheme, reconstruct

from network.memory import MemoryNetwork
from protocols import beaver, core
from protocols.preprocessing.dealer_node import DealerClient, DealerNode
from protocols.prg import CryptoRNG
from protocols.session import CountingChannel, Session, Stats

pytestmark = pytest.mark.timeout(60)


def setup(n, batch=256):
    sch = make_scheme("additive", n)
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
                    for v, (_, f) in zip(out, comps, strict=True)]

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
