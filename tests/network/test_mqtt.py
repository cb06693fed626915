"""MQTT specifics: untrusted broker (T13), spoofing/replay/transplant (T09), loss (T17),
broker outages (T16). Needs Mosquitto on 127.0.0.1:1883; broker restarts use a private
mosquitto on a free port (started and stopped by the test itself)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time

import aiomqtt
import numpy as np
import pytest
from net_helpers import MQTT_SKIP

from network.errors import (
    BrokerUnavailableError,
    ChannelAuthError,
    MessageLossError,
    PeerUnavailableError,
)
from network.keys import generate_keypair
from network.mqtt import DATA, MqttChannel
from network.mqtt_mesh import local_mqtt_mesh
from network.mqtt_wire import ACK, HS1

pytestmark = [pytest.mark.mqtt]
MARKER = b"SECRET-MARKER-" * 8


class Spy:
    """A client with broker-level access: sees every payload, can publish anywhere."""

    def __init__(self, base: str, port: int = 1883):
        self.base, self.seen, self.client, self.task, self.port = base, [], None, None, port

    async def start(self):
        self.client = aiomqtt.Client("127.0.0.1", self.port)
        await self.client.__aenter__()
        await self.client.subscribe(f"{self.base}/#", qos=1)
        self.task = asyncio.create_task(self._loop())

    async def _loop(self):
        async for m in self.client.messages:
            self.seen.append((str(m.topic), bytes(m.payload)))

    async def close(self):
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.client.__aexit__(None, None, None)


@MQTT_SKIP
@pytest.mark.timeout(30)
@pytest.mark.parametrize("secure", [True, False], ids=["secure", "plaintext-control"])
def test_broker_sees_only_ciphertext(secure):
    async def main():
        sid = os.urandom(8)
        spy = Spy(f"smpc/{sid.hex()}")
        await spy.start()
        chans = await local_mqtt_mesh(2, session_id=sid, secure=secure, timeout=5, connect_timeout=5)
        try:
            arr = np.frombuffer(MARKER, dtype=np.uint8).copy()
            await chans[0].send(1, "secret-tag-name", arr)
            await chans[1].send(0, "b", MARKER)
            await chans[1].recv(0, "secret-tag-name")
            await chans[0].recv(1, "b")
            await asyncio.sleep(0.2)
        finally:
            for c in chans:
                await c.close()
            await spy.close()
        blob = b"".join(p for _, p in spy.seen)
        return blob

    blob = asyncio.run(main())
    if secure:
        assert MARKER[:16] not in blob and b"secret-tag-name" not in blob
    else:  # positive control: the spy can see plaintext, so the check above has power
        assert MARKER[:16] in blob


async def _secure_pair(sid, **kw):
    return await local_mqtt_mesh(2, session_id=sid, timeout=kw.pop("timeout", 2), connect_timeout=5, **kw)


@MQTT_SKIP
@pytest.mark.timeout(30)
def test_spoofed_and_garbage_publishes_dropped_and_counted():
    """T13/T27: forged DATA, a forged ACK, a non-record, a handshake from the wrong side: each
    dropped and counted exactly, none delivered, none terminal; the genuine message follows."""
    async def main():
        sid = os.urandom(8)
        spy = Spy(f"smpc/{sid.hex()}")
        await spy.start()
        chans = await _secure_pair(sid)
        try:
            nxt = chans[1]._peers[0].recv_next.to_bytes(8, "little")
            forged = [bytes([DATA]) + nxt + os.urandom(60),  # next seq, wrong key
                      bytes([DATA]) + (5).to_bytes(8, "little") + os.urandom(60),
                      bytes([DATA]) + nxt,  # too short to hold a tag
                      bytes([ACK]) + os.urandom(9 + 16),  # MAC does not verify
                      b"\x7fnot a record",
                      bytes([HS1]) + os.urandom(48)]  # a second, different handshake
            for pl in forged:
                await spy.client.publish(chans[0].topic(0, 1), pl, qos=1)
            await spy.client.publish(chans[0].topic(1, 0), bytes([HS1]) + os.urandom(48), qos=1)
            await chans[0].send(1, "real", b"genuine")
            assert await chans[1].recv(0, "real") == b"genuine"
            await chans[1].send(0, "back", b"ok")
            assert await chans[0].recv(1, "back") == b"ok"
            assert chans[1].link_stats()["rejected_by_peer"] == {0: len(forged)}
            assert chans[0].link_stats()["rejected_by_peer"] == {1: 1}  # HS1 from index 1
            assert not chans[0]._peer_error and not chans[1]._peer_error
        finally:
            for c in chans:
                await c.close()
            await spy.close()

    asyncio.run(main())


@MQTT_SKIP
@pytest.mark.timeout(30)
def test_replayed_publish_not_delivered_twice():
    async def main():
        sid = os.urandom(8)
        spy = Spy(f"smpc/{sid.hex()}")
        await spy.start()
        chans = await _secure_pair(sid)
        try:
            await chans[0].send(1, "a", b"first")
            assert await chans[1].recv(0, "a") == b"first"
            await asyncio.sleep(0.1)
            data = [pl for t, pl in spy.seen if t == chans[0].topic(0, 1) and pl[0] == DATA]
            assert data
            for pl in data:  # QoS-1-style duplicates, replayed by the broker
                await spy.client.publish(chans[0].topic(0, 1), pl, qos=1)
            await asyncio.sleep(0.2)
            await chans[0].send(1, "b", b"second")
            assert await chans[1].recv(0, "b") == b"second"
            assert 0 not in chans[1]._peer_error
        finally:
            for c in chans:
                await c.close()
            await spy.close()

    asyncio.run(main())


@MQTT_SKIP
@pytest.mark.timeout(30)
@pytest.mark.parametrize("where", ["other_session", "other_sender"])
def test_transplanted_publish_dropped(where):
    keys = [generate_keypair() for _ in range(3)]
    sks, pks = [k[0] for k in keys], [k[1] for k in keys]

    async def main():
        sid_a, sid_b = os.urandom(8), os.urandom(8)
        spy = Spy("smpc")
        await spy.start()
        a = await local_mqtt_mesh(3, session_id=sid_a, static_keys=sks, public_keys=pks, timeout=2,
                                  connect_timeout=5)
        await a[0].send(2, "t", b"from 0 in A")
        assert await a[2].recv(0, "t") == b"from 0 in A"
        await asyncio.sleep(0.1)
        rec = [pl for t, pl in spy.seen if t == a[0].topic(0, 2) and pl[0] == DATA][0]
        if where == "other_session":
            for c in a:
                await c.close()
            b = await local_mqtt_mesh(3, session_id=sid_b, static_keys=sks, public_keys=pks,
                                      timeout=2, connect_timeout=5)
            target, src = b, 0
        else:
            b, target, src = a, a, 1
        try:  # dropped and counted, not delivered; the genuine message still arrives
            await spy.client.publish(target[0].topic(src, 2), rec, qos=1)
            await target[src].send(2, "t2", b"genuine")
            assert await target[2].recv(src, "t2") == b"genuine"
            assert target[2].link_stats()["rejected_by_peer"] == {src: 1}
            assert not target[2]._peer_error
        finally:
            for c in {*a, *b}:
                await c.close()
            await spy.close()

    asyncio.run(main())


@MQTT_SKIP
@pytest.mark.timeout(30)
def test_unknown_key_through_broker():
    async def main():
        sid = os.urandom(8)
        (s0, p0), (s1, p1), (sx, px) = (generate_keypair() for _ in range(3))
        c0 = MqttChannel(0, 2, session_id=sid, static_key=sx, peer_keys=[p0, p1], connect_timeout=1.5)
        c1 = MqttChannel(1, 2, session_id=sid, static_key=s1, peer_keys=[p0, p1], connect_timeout=1.5)
        await c0.start()
        await c1.start()
        res = await asyncio.gather(c0.handshake(), c1.handshake(), return_exceptions=True)
        await c0.close()
        await c1.close()
        return res

    res = asyncio.run(main())
    assert all(isinstance(r, ChannelAuthError | PeerUnavailableError) for r in res), res
    assert any(isinstance(r, ChannelAuthError) for r in res), res


@MQTT_SKIP
@pytest.mark.timeout(30)
def test_lost_record_is_message_loss():
    """T17: a record the broker dropped (and that can no longer be resent) -> MessageLossError."""

    async def main():
        chans = await _secure_pair(os.urandom(8), timeout=1.0, max_message_size=4096)
        try:
            sender = chans[0]
            orig = sender._publish
            drop = {"seq": None}

            def lossy(peer, payload):
                if payload[0] == DATA and int.from_bytes(payload[1:9], "little") == drop["seq"]:
                    sender._peers[peer].outbox.pop(drop["seq"], None)  # gone for good
                    return None
                return orig(peer, payload)

            sender._publish = lossy
            drop["seq"] = sender._peers[1].send_seq + 2  # a middle chunk of the next message
            await sender.send(1, "big", np.arange(3000, dtype=np.uint64))
            await sender.send(1, "after", b"x")
            t0 = time.monotonic()
            with pytest.raises(MessageLossError):
                await chans[1].recv(0, "big")
            assert time.monotonic() - t0 < 2.5
        finally:
            for c in chans:
                await c.close()

    asyncio.run(main())


@MQTT_SKIP
@pytest.mark.timeout(30)
def test_chunking_and_resend_after_loss():
    """Records dropped once (broker hiccup) are resent end to end; the message arrives intact."""

    async def main():
        chans = await _secure_pair(os.urandom(8), timeout=5, max_message_size=2048)
        try:
            sender = chans[0]
            orig = sender._publish
            dropped = set()

            def flaky(peer, payload):
                if payload[0] == DATA:
                    seq = int.from_bytes(payload[1:9], "little")
                    if seq % 3 == 1 and seq not in dropped:
                        dropped.add(seq)
                        return None
                return orig(peer, payload)

            sender._publish = flaky
            a = np.arange(5000, dtype=np.uint64)
            await sender.send(1, "big", a)
            got = await chans[1].recv_array(0, "big", dtype=np.uint64, shape=a.shape)
            np.testing.assert_array_equal(got, a)
            assert dropped
        finally:
            for c in chans:
                await c.close()

    asyncio.run(main())


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.timeout(20)
def test_broker_unreachable_at_start():
    async def main():
        t0 = time.monotonic()
        with pytest.raises(BrokerUnavailableError):
            await local_mqtt_mesh(2, session_id=b"s", port=_free_port(), timeout=1, connect_timeout=1)
        assert time.monotonic() - t0 < 3

    asyncio.run(main())


MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


class PrivateBroker:
    def __init__(self, tmp_path):
        self.port = _free_port()
        self.conf = tmp_path / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()  # never leave a broker behind
        raise RuntimeError("private mosquitto did not start")

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto binary not installed")
@pytest.mark.timeout(40)
def test_broker_restart_short_and_long_outage(tmp_path):
    broker = PrivateBroker(tmp_path)
    broker.start()

    async def main():
        chans = await local_mqtt_mesh(3, session_id=os.urandom(8), port=broker.port, timeout=4,
                                      connect_timeout=5)
        try:
            for k in range(3):
                await chans[0].send(1, f"pre{k}", np.full(10, k, dtype=np.uint64))
            # short outage: messages sent while the broker is down arrive after it is back
            broker.stop()
            await asyncio.sleep(0.3)
            await chans[0].send(1, "during", np.arange(100, dtype=np.uint64))
            await chans[2].send(1, "during", b"from 2")
            await asyncio.sleep(0.5)
            broker.start()
            got = await chans[1].recv_array(0, "during", dtype=np.uint64, shape=(100,))
            np.testing.assert_array_equal(got, np.arange(100, dtype=np.uint64))
            assert await chans[1].recv(2, "during") == b"from 2"
            for k in range(3):
                assert (await chans[1].recv_array(0, f"pre{k}", dtype=np.uint64, shape=(10,)) == k).all()
            await chans[1].send(0, "after", b"ok")
            assert await chans[0].recv(1, "after") == b"ok"
            assert not any(c._peer_error for c in chans)
            # long outage: every pending receive ends in BrokerUnavailableError within ~deadline
            broker.stop()
            t0 = time.monotonic()
            with pytest.raises(BrokerUnavailableError):
                await chans[1].recv(0, "never")
            assert time.monotonic() - t0 < 2 * 4 + 1
        finally:
            for c in chans:
                await c.close()

    try:
        asyncio.run(main())
    finally:
        broker.stop()


@MQTT_SKIP
@pytest.mark.timeout(30)
def test_receiver_that_stops_reading_bounds_sender_memory():
    """T15: unacknowledged data to one peer is bounded; the sender aborts within ~the deadline."""

    async def main():
        chans = await _secure_pair(os.urandom(8), timeout=1.0)
        try:
            chans[0].max_unacked = 2 << 20
            chans[1]._on_data = lambda j, raw: None  # party 1 hangs: reads nothing, acks nothing
            t0 = time.monotonic()
            peak = 0

            async def watch():
                nonlocal peak
                while True:
                    peak = max(peak, chans[0]._peers[1].outbox_bytes)
                    await asyncio.sleep(0.01)

            w = asyncio.create_task(watch())
            with pytest.raises(PeerUnavailableError, match="acknowledged nothing"):
                for k in range(50):
                    await chans[0].send(1, f"m{k}", np.zeros(1 << 17, dtype=np.uint64))
            w.cancel()
            assert time.monotonic() - t0 < 2 * 1.0 + 0.5
            assert peak <= (2 << 20) + 2 * chans[0].max_message_size
        finally:
            for c in chans:
                await c.close()

    asyncio.run(main())


@MQTT_SKIP
def test_open_mqtt_channel_cancelled_in_handshake_leaves_no_task():
    """open_mqtt_channel (one party per process, e.g. mpc.processes) did not close its
    channel when the handshake was cancelled or failed: the broker client and its reader
    task stayed behind (found by the issue 14 hardening)."""
    from network.errors import PeerUnavailableError
    from network.mqtt_mesh import open_mqtt_channel

    keys = [generate_keypair() for _ in range(2)]

    async def main():
        def opener(connect_timeout):
            return open_mqtt_channel(0, 2, session_id=os.urandom(16), static_key=keys[0][0],
                                     peer_keys=[k[1] for k in keys], timeout=5,
                                     connect_timeout=connect_timeout)

        t = asyncio.create_task(opener(30))  # the peer never comes
        await asyncio.sleep(1.0)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        with pytest.raises(PeerUnavailableError):
            await opener(0.5)
        await asyncio.sleep(0.2)
        return [x for x in asyncio.all_tasks() if x is not asyncio.current_task()]

    assert asyncio.run(main()) == []
