"""Opening MQTT channels: one party's endpoint (`open_mqtt_channel`, a party in its own
process) or all n parties in this process (`local_mqtt_mesh`, tests and notebooks). The
channel itself is network.mqtt.MqttChannel."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence

from network.errors import NetworkError
from network.framing import DEFAULT_MAX_FRAME
from network.keys import mesh_keys
from network.mqtt import MqttChannel
from network.mqtt_wire import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_MESSAGE,
    DEFAULT_MAX_REJECTED,
    DEFAULT_TIMEOUT,
)


async def open_mqtt_channel(
    pid: int,
    n: int,
    *,
    session_id: bytes,
    host: str = "127.0.0.1",
    port: int = 1883,
    static_key: bytes | None = None,
    peer_keys: Sequence[bytes] | Mapping[int, bytes] | None = None,
    consortium_id: bytes = b"smpc",
    insecure_plaintext: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    max_message_size: int = DEFAULT_MAX_MESSAGE,
    max_frame: int = DEFAULT_MAX_FRAME,
    max_rejected: int | None = DEFAULT_MAX_REJECTED,
    username: str | None = None,
    password: str | None = None,
) -> MqttChannel:
    """One party's channel through the broker (for a party in its own OS process): connect,
    subscribe, and complete the handshake with every peer. Raises BrokerUnavailableError,
    PeerUnavailableError (a peer did not show up within connect_timeout) or ChannelAuthError;
    BrokerRefusedError if the broker refuses `username` / `password`."""
    ch = MqttChannel(
        pid, n, session_id=session_id, host=host, port=port, static_key=static_key,
        peer_keys=peer_keys, consortium_id=consortium_id, insecure_plaintext=insecure_plaintext,
        timeout=timeout, connect_timeout=connect_timeout, max_message_size=max_message_size,
        max_frame=max_frame, max_rejected=max_rejected, username=username, password=password,
    )
    try:  # closed on every path: a failed or cancelled connect leaves no client or task
        await ch.start()
        await ch.handshake()
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.shield(ch.close())
        raise
    return ch


async def local_mqtt_mesh(
    n: int,
    *,
    session_id: bytes,
    host: str = "127.0.0.1",
    port: int = 1883,
    secure: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    static_keys: Sequence[bytes] | None = None,
    public_keys: Sequence[bytes] | None = None,
    consortium_id: bytes = b"smpc",
    max_message_size: int = DEFAULT_MAX_MESSAGE,
    max_frame: int = DEFAULT_MAX_FRAME,
    max_rejected: int | None = DEFAULT_MAX_REJECTED,
) -> list[MqttChannel]:
    """All n parties in this process, talking through the broker at host:port.

    With secure=True (the default) fresh key pairs are generated unless given.
    """
    sks, pks = mesh_keys(n, static_keys, public_keys) if secure else ([], [])
    chans = [
        MqttChannel(
            i, n, session_id=session_id, host=host, port=port,
            static_key=sks[i] if secure else None,
            peer_keys=pks if secure else None,
            consortium_id=consortium_id, insecure_plaintext=not secure, timeout=timeout,
            connect_timeout=connect_timeout, max_message_size=max_message_size,
            max_frame=max_frame, max_rejected=max_rejected,
        )
        for i in range(n)
    ]
    try:
        for ch in chans:
            await ch.start()
        async with asyncio.TaskGroup() as tg:
            for ch in chans:
                tg.create_task(ch.handshake())
    except* NetworkError as eg:
        for ch in chans:
            await ch.close()
        raise eg.exceptions[0] from None
    except* BaseException:
        for ch in chans:
            await ch.close()
        raise
    return chans


__all__ = ["local_mqtt_mesh", "open_mqtt_channel"]
