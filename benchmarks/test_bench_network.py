"""Transport benchmarks: one-direction throughput with 8 MiB frames and small-message round
trips, over memory, TCP (Noise-encrypted and plaintext) and MQTT (through 127.0.0.1:1883).

All parties run in one process and one event loop (so sender, receiver and, for TCP, both
kernel socket ends share the CPU); `test_tcp_two_processes` measures encrypted TCP between two
OS processes, the deployment shape.

Target (issue 3): encrypted TCP, loopback, one direction, 8 MiB frames >= 400 MB/s.
    pytest benchmarks/test_bench_network.py --benchmark-only
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

FRAME = np.ones(1 << 20, dtype=np.uint64)  # 8 MiB
MB = 1e6


def _mqtt_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=0.5).close()
        return True
    except OSError:
        return False


async def _mesh(kind: str, n: int = 2):
    sid = os.urandom(8)
    if kind == "memory":
        from network.memory import MemoryNetwork

        return MemoryNetwork(n).channels
    if kind.startswith("tcp"):
        from network.tcp import local_tcp_mesh

        return await local_tcp_mesh(n, session_id=sid, secure=kind == "tcp")
    from network.mqtt_mesh import local_mqtt_mesh

    return await local_mqtt_mesh(n, session_id=sid, secure=kind == "mqtt")


KINDS = ["memory", "tcp", "tcp-plain",
         pytest.param("mqtt", marks=pytest.mark.skipif(not _mqtt_up(), reason="no broker on 1883"))]


class Bench:
    def __init__(self, kind):
        self.loop = asyncio.new_event_loop()
        self.chans = self.loop.run_until_complete(_mesh(kind))
        self.k = 0

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def close(self):
        async def close():
            for c in self.chans:
                await c.close()

        self.run(close())
        self.loop.close()


@pytest.mark.parametrize("kind", KINDS)
def test_throughput_8mib_frames(benchmark, kind, full_sizes):
    frames = 24 if full_sizes else 8
    if kind == "mqtt":
        frames = max(2, frames // 4)
    b = Bench(kind)
    a, c = b.chans

    async def burst():
        b.k += 1
        tag = f"b{b.k}"

        async def snd():
            for i in range(frames):
                await a.send(1, f"{tag}/{i}", FRAME)

        async def rcv():
            for i in range(frames):
                await c.recv_array(0, f"{tag}/{i}", dtype=np.uint64, shape=FRAME.shape)

        await asyncio.gather(snd(), rcv())

    benchmark.pedantic(lambda: b.run(burst()), rounds=5, warmup_rounds=1)
    mbps = frames * FRAME.nbytes / benchmark.stats.stats.median / MB
    benchmark.extra_info.update(transport=kind, frame_bytes=FRAME.nbytes, frames=frames, MB_per_s=mbps)
    print(f"\n{kind}: {mbps:.0f} MB/s one direction, 8 MiB frames")
    b.close()


@pytest.mark.parametrize("kind", KINDS)
def test_small_round_trip(benchmark, kind):
    b = Bench(kind)
    a, c = b.chans
    x = np.arange(4, dtype=np.uint64)

    async def ping():
        b.k += 1
        t = f"p{b.k}"
        await a.send(1, t, x)
        await c.recv_array(0, t, dtype=np.uint64, shape=(4,))
        await c.send(0, t, x)
        await a.recv_array(1, t, dtype=np.uint64, shape=(4,))

    samples = []

    def timed():
        t0 = time.perf_counter()
        b.run(ping())
        samples.append(time.perf_counter() - t0)

    benchmark.pedantic(timed, rounds=100 if kind != "mqtt" else 30, warmup_rounds=3)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(0.99 * len(samples)))]
    benchmark.extra_info.update(transport=kind, median_s=samples[len(samples) // 2], p99_s=p99)
    print(f"\n{kind}: round trip median {samples[len(samples) // 2] * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms")
    b.close()


CHILD = textwrap.dedent(
    """
    import asyncio, sys, numpy as np
    from network.tcp import open_tcp_channel
    from network.keys import generate_keypair
    async def main():
        sk, pks, port0, port1, frames, secure = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "1"
        pk = [bytes.fromhex(p) for p in pks.split(",")]
        ch = await open_tcp_channel(1, [("127.0.0.1", port0), ("127.0.0.1", port1)], session_id=b"bench",
                                    static_key=bytes.fromhex(sk), peer_keys=pk, insecure_plaintext=not secure)
        shape = (1 << 20,)
        for i in range(frames):
            await ch.recv_array(0, f"f{i}", dtype=np.uint64, shape=shape)
        await ch.send(0, "done", b"ok")
        await ch.recv(0, "bye")
        await ch.close()
    asyncio.run(main())
    """
)


@pytest.mark.parametrize("secure", [True, False], ids=["tcp", "tcp-plain"])
def test_tcp_two_processes(benchmark, secure, full_sizes):
    """Party 0 in this process sends 8 MiB frames to party 1 in another OS process."""
    from network.keys import generate_keypair
    from network.tcp import TcpChannel

    frames = 48 if full_sizes else 16
    keys = [generate_keypair() for _ in range(2)]
    pks = [pk for _, pk in keys]
    results = []

    def once():
        async def main():
            ch = TcpChannel(0, 2, session_id=b"bench", static_key=keys[0][0], peer_keys=pks,
                            insecure_plaintext=not secure)
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port1 = s.getsockname()[1]
            s.close()
            repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, keys[1][0].hex(), ",".join(p.hex() for p in pks),
                 "1", str(port1), str(frames), "1" if secure else "0"],
                cwd=repo, env={**os.environ, "PYTHONPATH": repo})
            try:
                await ch.connect([("127.0.0.1", 1), ("127.0.0.1", port1)])
                t0 = time.perf_counter()
                for i in range(frames):
                    await ch.send(1, f"f{i}", FRAME)
                await ch.recv(1, "done")
                results.append(frames * FRAME.nbytes / (time.perf_counter() - t0) / MB)
                await ch.send(1, "bye", b"")
            finally:
                await ch.close()
                proc.wait(timeout=30)

        asyncio.run(main())

    benchmark.pedantic(once, rounds=3, warmup_rounds=0)
    results.sort()
    mbps = results[len(results) // 2]
    benchmark.extra_info.update(transport="tcp" if secure else "tcp-plain", processes=2, MB_per_s=mbps)
    print(f"\n{'tcp' if secure else 'tcp-plain'} (2 processes): {mbps:.0f} MB/s one direction")
