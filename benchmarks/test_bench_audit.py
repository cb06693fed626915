"""Cost of the anchored audit log (issue 14): one signed entry (XEdDSA over the chain hash,
SQLite with synchronous=FULL), and the end-of-job heads exchange between 3 nodes over an
in-process channel (2 rounds; per node: 2 signature checks and one signature per peer, one
witness entry per peer, the anchor file written with fsync)."""

import asyncio
import itertools

from mpc.node.anchor import exchange_heads
from mpc.node.audit import AuditLog, entry_message, xsign, xverify
from network.keys import generate_keypair
from network.memory import MemoryNetwork


def test_signed_append(benchmark, tmp_path):
    sk, _ = generate_keypair()
    log = AuditLog.create(tmp_path / "audit.db", sk, party=0)
    k = itertools.count()
    benchmark(lambda: log.append(job_id=f"job{next(k)}", decision="accepted", peers=[1, 2],
                                 rounds=12, bytes=4096, outcome="done", reason="ok"))
    log.close()


def test_sign_and_verify(benchmark):
    sk, pk = generate_keypair()
    msg = entry_message(0, 1, bytes(32))

    def once():
        assert xverify(pk, msg, xsign(sk, msg))

    benchmark(once)


def test_heads_exchange_3_nodes(benchmark, tmp_path):
    keys = [generate_keypair() for _ in range(3)]
    logs = []
    for i in range(3):
        (tmp_path / f"s{i}").mkdir()
        logs.append(AuditLog.create(tmp_path / f"s{i}" / "audit.db", keys[i][0], party=i))
    k = itertools.count()

    def job():
        jid = f"job{next(k)}"
        for log in logs:
            log.append(job_id=jid, outcome="done")
        net = MemoryNetwork(3, timeout=10)

        async def run():
            return await asyncio.gather(*(exchange_heads(
                net.channel(i), logs[i], keys[i][0], {j: keys[j][1] for j in range(3) if j != i},
                job_id=jid) for i in range(3)))

        res = asyncio.run(run())
        assert all(len(r.countersigned_by) == 2 for r in res)

    benchmark(job)
    for log in logs:
        log.close()
