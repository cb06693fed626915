"""Offline-phase throughput: triples per second from each preprocessing source, all parties
in one process (`pytest benchmarks/test_bench_preprocessing.py --benchmark-only`; add
`--full-sizes` for the issue's sizes).

Targets (issue 4): dealer node >= 1e7 triples/s (3 parties); DN07 over GF(2^61-1) >= 1e6
triples/s (3 parties); OT-based (2 parties) >= 2e3 triples/s; plus the OT matrix triple for
(1000 x 100) @ (100 x 1).
"""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "protocols"))
from preprocessing_helpers import make_scheme, sessions  # noqa: E402

from network.memory import MemoryNetwork  # noqa: E402
from protocols.preprocessing.dealer_node import DealerClient, DealerNode  # noqa: E402
from protocols.preprocessing.dn07 import DN07  # noqa: E402
from protocols.preprocessing.ot import OTPreprocessing  # noqa: E402
from protocols.prg import CryptoRNG  # noqa: E402


def _gather(loop, items, job):
    async def main():
        return await asyncio.gather(*(job(x) for x in items))

    return loop.run_until_complete(main())


def _report(benchmark, source, parties, count, **extra):
    benchmark.extra_info.update(
        source=source, parties=parties, items=count, triples_per_s=count / benchmark.stats.stats.median, **extra
    )


def test_dn07_triples(benchmark, full_sizes):
    N = 1 << 20 if full_sizes else 1 << 18
    sch = make_scheme("shamir", 3)
    ss = sessions(3, sch, lambda s: DN07(s, batch=N))
    loop = asyncio.new_event_loop()
    benchmark.pedantic(lambda: _gather(loop, ss, lambda s: s.prep.triples((N,))), rounds=5, warmup_rounds=1)
    _report(benchmark, "dn07", 3, N, domain=sch.field.name)


def test_ot_triples(benchmark, full_sizes):
    N = 1 << 15 if full_sizes else 1 << 13
    sch = make_scheme("additive", 2)
    ss = sessions(2, sch, lambda s: OTPreprocessing(s, batch=1 << 13))
    loop = asyncio.new_event_loop()
    _gather(loop, ss, lambda s: s.prep.triples((1,)))  # base OTs once, outside the timing
    for s in ss:
        s.prep._pool = None
    benchmark.pedantic(lambda: _gather(loop, ss, lambda s: s.prep.triples((N,))), rounds=3, warmup_rounds=1)
    _report(benchmark, "ot", 2, N, domain="Z2^64")


def test_ot_matrix_triple_1000x100_100x1(benchmark):
    sch = make_scheme("additive", 2)
    ss = sessions(2, sch, lambda s: OTPreprocessing(s))
    loop = asyncio.new_event_loop()
    _gather(loop, ss, lambda s: s.prep.triples((1,)))
    benchmark.pedantic(
        lambda: _gather(loop, ss, lambda s: s.prep.matrix_triples((1000, 100), (100, 1))), rounds=3, warmup_rounds=1
    )
    benchmark.extra_info.update(source="ot", parties=2, shape="(1000x100)@(100x1)")


def test_dealer_node_triples(benchmark, full_sizes):
    n, N = 3, (1 << 24 if full_sizes else 1 << 22)
    batch = 1 << 20
    sch = make_scheme("additive", n)
    dnet = MemoryNetwork(n + 1, timeout=60)
    clients = [DealerClient(p, n, sch.domain, dnet.channel(p), n, batch=batch) for p in range(n)]
    node = DealerNode(dnet.channel(n), n, sch.domain, CryptoRNG(), batch=batch, window=4)
    loop = asyncio.new_event_loop()
    serving = loop.create_task(node.serve())
    benchmark.pedantic(lambda: _gather(loop, clients, lambda c: c.triples((N,))), rounds=5, warmup_rounds=1)
    _report(benchmark, "dealer", n, N, domain="Z2^64")
    loop.run_until_complete(clients[0].close())
    loop.run_until_complete(serving)
