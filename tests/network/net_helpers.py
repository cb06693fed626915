"""Helpers for the network tests: transport factories (memory, tcp, mqtt; secure / plaintext)."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from network.memory import MemoryNetwork


def mqtt_available(host: str = "127.0.0.1", port: int = 1883) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


MQTT_UP = mqtt_available()
MQTT_SKIP = pytest.mark.skipif(not MQTT_UP, reason="no MQTT broker answers on 127.0.0.1:1883")


async def make_mesh(kind: str, n: int, *, timeout: float = 5.0, session_id: bytes | None = None):
    sid = session_id or os.urandom(8)
    if kind == "memory":
        return MemoryNetwork(n, timeout=timeout).channels
    if kind in ("tcp", "tcp-plain"):
        from network.tcp import local_tcp_mesh

        return await local_tcp_mesh(n, session_id=sid, secure=kind == "tcp", timeout=timeout,
                                    connect_timeout=10)
    if kind in ("mqtt", "mqtt-plain"):
        from network.mqtt_mesh import local_mqtt_mesh

        return await local_mqtt_mesh(n, session_id=sid, secure=kind == "mqtt", timeout=timeout,
                                     connect_timeout=10)
    raise ValueError(kind)


async def close_all(chans) -> None:
    for ch in chans:
        await ch.close()


TRANSPORTS = [
    "memory",
    "tcp",
    "tcp-plain",
    pytest.param("mqtt", marks=[pytest.mark.mqtt, MQTT_SKIP]),
    pytest.param("mqtt-plain", marks=[pytest.mark.mqtt, MQTT_SKIP]),
]


def leftover_tasks() -> set[asyncio.Task]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()}
