"""network.wanproxy: the delaying, rate-limiting TCP proxy, and `smpc bench --transport tcp
--latency/--bandwidth` through it. Timing assertions are lower bounds only (a loaded machine
can only make things slower), plus exact byte counts."""

import asyncio
import os
import time

import pytest

from mpc.bench import run as bench
from network.wanproxy import WanProxy, wan_addresses

pytestmark = pytest.mark.timeout(60)


async def _echo_server():
    async def echo(reader, writer):
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[:2]


def test_round_trip_takes_at_least_twice_the_latency():
    async def go():
        server, addr = await _echo_server()
        proxy = WanProxy(addr, latency=0.03)
        paddr = await proxy.start()
        reader, writer = await asyncio.open_connection(*paddr)
        rtts = []
        for i in range(4):
            t = time.monotonic()
            writer.write(b"ping%d" % i)
            assert await reader.readexactly(5) == b"ping%d" % i
            rtts.append(time.monotonic() - t)
        writer.close()
        await proxy.close()
        server.close()
        return rtts, proxy

    rtts, proxy = asyncio.run(go())
    assert min(rtts) >= 2 * 0.03 * 0.98  # request and response each delayed one way
    assert proxy.bytes_forwarded == {"to_target": 20, "from_target": 20}
    assert proxy.connections == 1


def test_bandwidth_cap_and_bytes_intact():
    payload = os.urandom(300_000)
    bw = 2e6  # 300 kB at 2 MB/s: >= 0.15 s one way

    async def go():
        got = bytearray()
        done = asyncio.Event()

        async def sink(reader, writer):
            while data := await reader.read(1 << 16):
                got.extend(data)
            done.set()
            writer.close()

        server = await asyncio.start_server(sink, "127.0.0.1", 0)
        proxy = WanProxy(server.sockets[0].getsockname()[:2], bandwidth=bw)
        paddr = await proxy.start()
        _, writer = await asyncio.open_connection(*paddr)
        t = time.monotonic()
        writer.write(payload)
        await writer.drain()
        writer.write_eof()
        await done.wait()
        elapsed = time.monotonic() - t
        writer.close()
        await proxy.close()
        server.close()
        return bytes(got), elapsed, proxy

    got, elapsed, proxy = asyncio.run(go())
    assert got == payload  # unchanged and in order
    assert proxy.bytes_forwarded["to_target"] == len(payload)
    assert elapsed >= 0.95 * len(payload) / bw


def test_wan_addresses_leave_party_zero():
    async def go():
        out, proxies = await wan_addresses([("127.0.0.1", 0), ("127.0.0.1", 1), ("127.0.0.1", 2)],
                                           latency=0.01)
        for p in proxies:
            await p.close()
        return out, proxies

    out, proxies = asyncio.run(go())
    assert out[0] == ("127.0.0.1", 0) and len(proxies) == 2
    assert [p.target for p in proxies] == [("127.0.0.1", 1), ("127.0.0.1", 2)]


def test_proxy_refuses_bad_parameters():
    with pytest.raises(ValueError):
        WanProxy(("127.0.0.1", 1), latency=-1)
    with pytest.raises(ValueError):
        WanProxy(("127.0.0.1", 1), bandwidth=0)


@pytest.mark.parametrize("processes", [False, True])
def test_bench_tcp_through_the_proxy(processes):
    lat = 0.02
    for op in ("open", "compare"):
        rec = bench.measure(op, 8, transport="tcp", processes=processes, latency=lat, repeat=1)
        assert rec["correct"] and rec["cost_model_ok"], rec
        assert rec["network"].startswith("tcp via delaying proxy")
        # every round waits for at least one one-way delay
        assert rec["seconds"] >= rec["rounds"] * lat * 0.98, rec


def test_bench_tcp_bandwidth_lower_bound():
    bw, size = 5e6, 50_000
    rec = bench.measure("mul", size, transport="tcp", bandwidth=bw, repeat=1)
    assert rec["correct"] and rec["cost_model_ok"]
    per_link = rec["bytes_per_party"] / 2  # 3 parties: each sends half of its bytes to each peer
    assert rec["seconds"] >= 0.95 * per_link / bw


def test_mqtt_has_no_wan_simulation():
    with pytest.raises(Exception, match="mqtt"):
        bench.measure("mul", 4, transport="mqtt", latency=0.01)
