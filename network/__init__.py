"""Moving bytes between parties: the Channel interface and its transports (no MPC math).

Interface (what protocols/ may import): `network.channel.Channel`, `network.errors`.

Transports (chosen by mpc/, the composition root):
- `network.memory.MemoryNetwork(n, latency=, bandwidth=, timeout=).channels`: in-process.
- `network.tcp.local_tcp_mesh(n, *, session_id, secure=True, timeout=...)`: all parties in one
  process over loopback TCP; `network.tcp.open_tcp_channel(pid, addresses, *, session_id,
  static_key, peer_keys, ...)`: one party in its own OS process.
- `network.mqtt_mesh.local_mqtt_mesh(n, *, session_id, host="127.0.0.1", port=1883,
  secure=True, ...)`; `network.mqtt_mesh.open_mqtt_channel(pid, n, *, session_id, static_key,
  peer_keys, ...)` (both also importable from network.mqtt); the channel is
  `network.mqtt.MqttChannel`, its wire format `network.mqtt_wire`.

Security: `network.secure` (Noise_KK_25519_ChaChaPoly_BLAKE2b handshake + AEAD records;
Noise_KK_25519_AESGCM_BLAKE2b on TCP links configured with `cipher="AESGCM"`),
`network.keys` (X25519 key files and pinned public keys), `network.framing` (the validated
binary message header; never pickle). `secure=False` / `insecure_plaintext=True` turn the
encryption off, for tests and benchmarks only.
"""
