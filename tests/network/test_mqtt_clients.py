"""Broker clients that are not parties (T27) and broker accounts with per-node topic ACLs
(issue 14). The T27 run_local test uses the shared Mosquitto on 127.0.0.1:1883 and attacks
only its own session's topics; the daemon tests and the ACL tests start a private mosquitto
(the ACL one with the files `smpc init --transport mqtt --broker-auth` writes)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil

import aiomqtt
import numpy as np
import pytest
from net_helpers import MQTT_SKIP
from test_mqtt import MOSQUITTO, PrivateBroker, Spy, _free_port

from network.errors import AuthFailureLimitError, BrokerRefusedError
from network.mqtt import DATA, MqttChannel
from network.mqtt_mesh import local_mqtt_mesh
from network.mqtt_wire import HS1

pytestmark = [pytest.mark.mqtt]

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
        broker.start()
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
    try:
        broker.start()
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
        # a named code (issue 14), not job.error.BrokerRefusedError
        assert e.value.reasons[cl.info["api"][2]][1] == "transport.broker_refused", \
            e.value.reasons
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
        broker.start()
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
