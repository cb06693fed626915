"""MQTT specifics: untrusted broker (T13), spoofing/replay/transplant (T09), loss (T17),
broker outages (T16). Needs Mosquitto on 127.0.0.1:1883; broker restarts use a private
mosquitto on a free port (started and stopped by the test itself)."""

from __future__ import annotations

import asyncio
import contextlib
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
    AuthFailureLimitError,
    BrokerRefusedError,
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
def test_too_many_forged_records_fail_the_link_typed():
    async def main():
        sid = os.urandom(8)
        spy = Spy(f"smpc/{sid.hex()}")
        await spy.start()
        chans = await local_mqtt_mesh(2, session_id=sid, timeout=10, connect_timeout=5,
                                      max_rejected=5)
        try:
            for k in range(6):
                await spy.client.publish(chans[0].topic(0, 1), bytes([DATA]) +
                                         k.to_bytes(8, "little") + os.urandom(40), qos=1)
            with pytest.raises(AuthFailureLimitError, match="6 records claiming party 0"):
                await chans[1].recv(0, "never")
            assert chans[1].link_stats()["rejected"] == 6
        finally:
            for c in chans:
                await c.close()
            await spy.close()

    asyncio.run(main())


class Attacker(Spy):
    """A broker client that is not a party (T27). The moment it sees a new session it
    publishes a burst of garbage of every kind on each of the session's n*(n-1) directed
    topics (`per_topic` records each, fewer than a link's bound), and it replays every record
    it sees once. QoS 0: fire and forget, so that the attack lands while the job runs."""

    def __init__(self, base: str, per_topic: int = 6, port: int = 1883, n: int = 3):
        super().__init__(base, port)
        self.per_topic, self.n = per_topic, n
        self.mine, self.sessions, self.garbage, self.replayed = set(), set(), {}, 0

    async def _send(self, topic, payload):
        self.mine.add(payload)
        with contextlib.suppress(aiomqtt.MqttError):
            await self.client.publish(topic, payload, qos=0)

    async def _loop(self):
        async for m in self.client.messages:
            t, pl = str(m.topic), bytes(m.payload)
            if pl in self.mine:
                continue
            self.mine.add(pl)
            session = t.rsplit("/", 2)[0]
            if session not in self.sessions:
                self.sessions.add(session)
                for src in range(self.n):
                    for dst in range(self.n):
                        if src != dst:
                            await self._burst(f"{session}/{src}/{dst}")
            await self._send(t, pl)  # the replay
            self.replayed += 1

    async def _burst(self, topic):
        junk = [bytes([DATA]) + (0).to_bytes(8, "little") + os.urandom(48), os.urandom(33),
                bytes([DATA]) + (1).to_bytes(8, "little") + os.urandom(64),
                bytes([HS1]) + os.urandom(48), b"\x7f" + os.urandom(8),
                bytes([DATA]) + (2).to_bytes(8, "little")]
        for x in junk[: self.per_topic]:
            await self._send(topic, x)
        self.garbage[topic] = min(self.per_topic, len(junk))


@MQTT_SKIP
@pytest.mark.timeout(60)
def test_broker_client_garbage_and_replays_do_not_abort_a_job():
    """T27: a live 3-party job (inputs, Beaver products, openings; five times) while a broker
    client replays every record and publishes garbage on the session's topics: the result is
    exact, nothing was aborted, and the channels counted what they dropped."""
    from mpc.cli.example import plaintext_total, weighted_sum_job
    from mpc.local import close_sessions, open_sessions
    from protocols.prg import derive_key

    seed = int.from_bytes(os.urandom(4), "little")
    sid = derive_key(seed, "sid")[:16]  # the session id open_sessions derives from the seed

    async def main():
        spy = Attacker(f"smpc/{sid.hex()}")  # this session only: the broker is shared
        await spy.start()
        sessions = await open_sessions(3, transport="mqtt", timeout=10, seed=seed)
        assert sessions[0].sid == sid
        try:
            async def job(s):
                return [await weighted_sum_job(s.child(f"rep{k}")) for k in range(5)]

            results = await asyncio.gather(*(job(s) for s in sessions))
            await asyncio.sleep(0.3)  # let the last garbage arrive before counting
            stats = [s.channel.inner.link_stats() for s in sessions]
            errors = [dict(s.channel.inner._peer_error) for s in sessions]
        finally:
            await close_sessions(sessions)
            await spy.close()
        return results, stats, errors, spy

    results, stats, errors, spy = asyncio.run(main())
    assert results == [[plaintext_total(3)] * 5] * 3
    assert errors == [{}, {}, {}]
    assert sum(st["rejected"] for st in stats) > 0 and sum(st["duplicates"] for st in stats) > 0
    assert spy.garbage == {f"smpc/{sid.hex()}/{i}/{j}": 6 for i in range(3) for j in range(3)
                           if i != j}  # every directed topic of the session was attacked
    assert sum(st["rejected"] for st in stats) <= 6 * 6


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


class AuthBroker(PrivateBroker):
    """A private mosquitto run with the mosquitto.conf (password and ACL files) that
    `smpc init --transport mqtt --broker-auth` wrote into `folder` for `port`."""

    def __init__(self, folder, port):  # not PrivateBroker's: it would write its own conf
        self.port, self.conf, self.proc = port, folder / "mosquitto.conf", None
        if os.geteuid() == 0:  # mosquitto started as root drops to its own user, which could
            # not read our 0600 files (operators: chown the two files to the broker's user)
            self.conf.write_text(self.conf.read_text() + "user root\n")
        self.pw = {f"bank{i}": (folder / f"bank{i}.broker-password").read_text().strip()
                   for i in range(3)}


def _init_with_broker_auth(folder):
    from mpc.cli.main import main

    port = _free_port()
    assert main(["init", "--parties", "3", "--out", str(folder), "--transport", "mqtt",
                 "--broker-auth", "--broker", f"mqtt://127.0.0.1:{port}"]) == 0
    return AuthBroker(folder, port)


@pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto binary not installed")
@pytest.mark.timeout(40)
def test_broker_accounts_and_per_node_topic_acls(tmp_path):
    """Nodes connect with their accounts; no anonymous or wrong-password client connects; a
    valid account that is not the node cannot publish on (or read) the node's topics, which
    it can on its own (positive control: that record reaches the node and is counted)."""
    from mpc.node.config import load_config
    from network.keys import load_private_key, public_key

    broker = _init_with_broker_auth(tmp_path)
    broker.start()
    cfgs = [load_config(tmp_path / f"bank{i}.toml") for i in range(2)]
    sks = [load_private_key(c.key_file) for c in cfgs]
    keys = [(sk, public_key(sk)) for sk in sks]

    async def main():
        sid = os.urandom(8)
        chans = [MqttChannel(i, 2, session_id=sid, host=cfgs[i].broker_host,
                             port=cfgs[i].broker_port, static_key=keys[i][0],
                             peer_keys=[k[1] for k in keys], username=cfgs[i].broker_username,
                             password=cfgs[i].broker_password(), timeout=5, connect_timeout=5)
                 for i in range(2)]
        try:
            for c in chans:
                await c.start()
            await asyncio.gather(*(c.handshake() for c in chans))
            await chans[0].send(1, "hello", b"through the authenticated broker")
            assert await chans[1].recv(0, "hello") == b"through the authenticated broker"
            bad = MqttChannel(0, 2, session_id=os.urandom(8), port=broker.port,
                              static_key=keys[0][0], peer_keys=[k[1] for k in keys],
                              username="bank0", password="wrong", connect_timeout=5)
            with pytest.raises(BrokerRefusedError, match="refused our credentials"):
                await bad.start()  # at once, not after connect_timeout of retries
            for user, pw in ((None, None), ("bank2", "wrong"), ("mallory", "x")):
                with pytest.raises(aiomqtt.MqttError):
                    async with aiomqtt.Client("127.0.0.1", broker.port, username=user,
                                              password=pw, timeout=3):
                        pass
            seen = []
            async with aiomqtt.Client("127.0.0.1", broker.port, username="bank2",
                                      password=broker.pw["bank2"]) as c2:
                await c2.subscribe(f"smpc/{sid.hex()}/#", qos=1)

                async def listen():
                    async for m in c2.messages:
                        seen.append(str(m.topic))

                lt = asyncio.create_task(listen())
                forged = bytes([DATA]) + (0).to_bytes(8, "little") + os.urandom(40)
                await c2.publish(chans[0].topic(0, 1), forged, qos=1)  # denied by the ACL
                await c2.publish(f"smpc/{sid.hex()}/2/1", b"\x7fjunk", qos=1)  # its own topic
                await chans[0].send(1, "after", b"still fine")
                assert await chans[1].recv(0, "after") == b"still fine"
                await chans[1].send(0, "back", b"ok")
                assert await chans[0].recv(1, "back") == b"ok"
                await asyncio.sleep(0.3)
                lt.cancel()
                await asyncio.gather(lt, return_exceptions=True)
            # bank2 read nothing of bank0 <-> bank1 (its own publish is not for itself either)
            assert seen == []
            # only bank2's record on its own topic reached bank1 (counted: from no party here)
            assert chans[1].link_stats()["rejected_by_peer"] == {-1: 1}
            assert not chans[1]._peer_error
        finally:
            for c in chans:
                await c.close()

    try:
        asyncio.run(main())
    finally:
        broker.stop()


@pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto binary not installed")
@pytest.mark.timeout(90)
def test_daemons_run_a_job_through_the_authenticated_broker(tmp_path):
    """Three node daemons with node.broker_username / broker_password_file (as `smpc init
    --transport mqtt --broker-auth` writes them) run a job through a broker that has no
    anonymous access and per-node ACLs; with a wrong password the node cannot run one."""
    from mpc.node.client import JobFailedError
    from mpc.node.config import load_config
    from tests.mpc.test_node import DATA as ROWS
    from tests.mpc.test_node import Cluster, _manifest

    broker = _init_with_broker_auth(tmp_path / "broker")
    for f in broker.pw:
        shutil.copy(tmp_path / "broker" / f"{f}.broker-password", tmp_path)
    cl = Cluster(tmp_path, transport="mqtt", timeouts={"connect": 5, "receive": 8, "job": 60})
    for i, p in enumerate(cl.info["configs"]):
        text = p.read_text().replace("mqtt://127.0.0.1:1883", f"mqtt://127.0.0.1:{broker.port}")
        p.write_text(text.replace("[consortium]", f'broker_username = "bank{i}"\n'
                                  f'broker_password_file = "bank{i}.broker-password"\n\n'
                                  "[consortium]"))
        assert load_config(p).broker_password() == broker.pw[f"bank{i}"]
    broker.start()
    try:
        cl.start_all()
        c = cl.client()
        res = c.result(c.submit(_manifest()), timeout=60)
        assert res.outputs["count"] == [sum(len(x) for x in ROWS)]
        cl.stop()
        (tmp_path / "bank2.broker-password").write_text("wrong\n")
        cl.start_all()
        with pytest.raises(JobFailedError) as e:
            c.result(c.submit(_manifest("k2")), timeout=60)
        assert all(r[0] == "failed" for r in e.value.reasons.values()), e.value.reasons
        assert "BrokerRefusedError" in e.value.reasons[cl.info["api"][2]][1], e.value.reasons
    finally:
        cl.stop()
        broker.stop()


def test_broker_password_comes_from_a_private_file(tmp_path):
    from mpc.cli.main import main
    from mpc.node.config import NodeConfigError, load_config

    assert main(["init", "--parties", "2", "--out", str(tmp_path), "--transport", "mqtt",
                 "--broker-auth"]) == 0
    p = tmp_path / "bank0.toml"
    cfg = load_config(p)
    assert cfg.broker_username == "bank0"
    assert cfg.broker_password() == (tmp_path / "bank0.broker-password").read_text().strip()
    assert oct((tmp_path / "bank0.broker-password").stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "mosquitto.passwd").stat().st_mode & 0o777) == "0o600"
    acl = (tmp_path / "mosquitto.acl").read_text()
    assert "user bank1\ntopic write smpc/+/1/+\ntopic read smpc/+/+/1" in acl
    assert cfg.broker_password() not in p.read_text()
    os.chmod(tmp_path / "bank0.broker-password", 0o644)
    with pytest.raises(NodeConfigError, match="node.broker_password_file: .*chmod 600"):
        cfg.broker_password()
    good = p.read_text()
    line = 'broker_password_file = "bank0.broker-password"'
    for text, match in ((good.replace(line, line + '\nbroker_password = "x"'),
                         "node.broker_password: secrets never go in the config"),
                        (good.replace(line, ""), "node.broker_password_file: .* go together")):
        p.write_text(text)
        with pytest.raises(NodeConfigError, match=match):
            load_config(p)
    assert main(["init", "--out", str(tmp_path / "t"), "--broker-auth"]) == 2  # tcp: refused


@pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto binary not installed")
@pytest.mark.timeout(90)
def test_broker_client_does_not_abort_a_daemon_job(tmp_path):
    """T27 against real daemons: a broker client replays every record and publishes garbage on
    the topics of the live jobs (a private broker, so that it attacks only this test's jobs):
    both jobs complete with the right result, and the nodes' job stats count what they dropped."""
    import threading

    from tests.mpc.test_node import DATA as ROWS
    from tests.mpc.test_node import Cluster, _manifest

    broker = PrivateBroker(tmp_path)
    broker.start()
    cl = Cluster(tmp_path, transport="mqtt", timeouts={"connect": 8, "receive": 8, "job": 60})
    for p in cl.info["configs"]:
        p.write_text(p.read_text().replace("mqtt://127.0.0.1:1883",
                                           f"mqtt://127.0.0.1:{broker.port}"))
    stop, ready = threading.Event(), threading.Event()
    spy_box = {}

    def attack():
        async def run():
            spy = spy_box["spy"] = Attacker("smpc", per_topic=6, port=broker.port)
            await spy.start()
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)
            await spy.close()

        asyncio.run(run())

    t = threading.Thread(target=attack)
    try:
        cl.start_all()
        t.start()
        assert ready.wait(10)
        c = cl.client()
        all_rows = np.concatenate(ROWS)
        for key, comp, out, want in (("t27a", "aggregate_sum", "sum", all_rows.sum(axis=0)),
                                     ("t27b", "aggregate_mean", "mean", all_rows.mean(axis=0))):
            job = c.submit(_manifest(key, comp))
            res = c.result(job, timeout=60)
            assert np.allclose(res.outputs[out], want, atol=1e-2)
            stats = [b["stats"] for b in c.status(job).values()]
            assert sum(st["rejected"] for st in stats) > 0, stats
            assert sum(st["duplicates"] for st in stats) > 0, stats
    finally:
        stop.set()
        if t.is_alive():
            t.join(10)
        cl.stop()
        broker.stop()
    assert sum(spy_box["spy"].garbage.values()) > 0
