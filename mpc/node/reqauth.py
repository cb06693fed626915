"""Signed API requests: every request to a node's API (except /health, and /metrics from
loopback) carries the caller's Ed25519 signature over

    "smpc-request-v2" \\n METHOD \\n NODE \\n PATH?QUERY \\n hex(SHA-256(body)) \\n TIMESTAMP
    \\n NONCE

in five headers: X-Smpc-Key (ed25519:<hex>), X-Smpc-Node (NODE: the node the client
addressed, as the Host header it sends: host[:port], lowercase), X-Smpc-Timestamp (unix
seconds), X-Smpc-Nonce (32 hex digits, fresh per request) and X-Smpc-Signature (hex).

The node binding (issue 14): a node accepts a request only if its signed NODE is the Host it
was received under (which the API has already checked is one of this node's own names,
mpc.node.api), so a request one node received (a bank sees every request an analyst sends
it) cannot be played to another node within the skew window: `auth.node`. The binding is the
address the analyst chose, not a key the node tells the client (a lying bank could name
another node's key and collect requests signed for that node). A request signed in the older
format without the binding ("smpc-request-v1", no X-Smpc-Node header) is refused with
`auth.unbound`.

The node refuses a timestamp more than `max_skew` seconds from its clock (`auth.skew`) and a
(key, nonce) pair it has seen within the skew window (`auth.replay`), so a recorded request
cannot be played again to the same node. Only keys the node knows (policy.analyst_keys,
api.operator_keys) are accepted (`auth.unknown_key`)."""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict

from mpc.node import codes
from mpc.node.manifest import VERIFY_PREFIX, parse_verify_key
from network.errors import SmpcError

CONTEXT = b"smpc-request-v2"
#: the format without the node binding: recognised only to refuse it with `auth.unbound`
CONTEXT_V1 = b"smpc-request-v1"
H_KEY, H_TIME, H_NONCE, H_SIG = ("X-Smpc-Key", "X-Smpc-Timestamp", "X-Smpc-Nonce",
                                 "X-Smpc-Signature")
H_NODE = "X-Smpc-Node"
#: the longest Host / X-Smpc-Node value (aiohttp bounds header fields at 4096 anyway)
MAX_NODE = 300


class RequestAuthError(SmpcError):
    """A request is unsigned, wrongly signed, stale, replayed or from an unknown key."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def request_message(method: str, path: str, body: bytes, timestamp: str, nonce: str,
                    node: str | None = None) -> bytes:
    """The signed string: v2 with `node` (the addressed Host), v1 without (refused)."""
    head = [CONTEXT_V1, method.upper().encode()] if node is None else \
        [CONTEXT, method.upper().encode(), node.lower().encode()]
    return b"\n".join([*head, path.encode(), hashlib.sha256(body).hexdigest().encode(),
                       timestamp.encode(), nonce.encode()])


def node_authority(url: str) -> str:
    """The Host header value for a node's base URL (host[:port], lowercase, no user info):
    what the client sends as Host and signs as X-Smpc-Node."""
    from urllib.parse import urlsplit

    netloc = urlsplit(url).netloc.rpartition("@")[2].lower()
    if not netloc:
        raise ValueError(f"not a node URL: {url!r}")
    return netloc


def sign_request(seed: bytes, method: str, path: str, body: bytes = b"", *,
                 now: float | None = None, node: str | None = None) -> dict[str, str]:
    """The headers that sign one request with the Ed25519 key `seed` for the node addressed
    as `node` (the Host header the request is sent with: `node_authority(url)`). Without
    `node` the request is signed in the v1 format, which nodes refuse (`auth.unbound`)."""
    from nacl.signing import SigningKey

    sk = SigningKey(seed)
    ts = str(int(time.time() if now is None else now))
    nonce = os.urandom(16).hex()
    if node is not None:
        node = node.lower()
    sig = sk.sign(request_message(method, path, body, ts, nonce, node)).signature
    out = {H_KEY: VERIFY_PREFIX + bytes(sk.verify_key).hex(), H_TIME: ts, H_NONCE: nonce,
           H_SIG: sig.hex()}
    if node is not None:
        out[H_NODE] = node
    return out


class RequestVerifier:
    """Checks signed requests against a set of known keys, a clock skew bound and a bounded
    replay cache (entries expire after 2 * max_skew; a full cache refuses new nonces with
    `auth.busy` rather than forgetting live ones). Each key may hold at most its share of the
    cache (cache_max // number of keys, at least min(cache_max // 4, 4096)): a nonce is recorded before the API's rate limit
    answers 429, so without the share one allowed key flooding signed requests would fill
    the cache and lock every other key out with `auth.busy`."""

    def __init__(self, keys, *, max_skew: float = 60.0, cache_max: int = 100_000):
        self.keys = set(keys)
        self.max_skew = max_skew
        self.cache_max = cache_max
        # a fair share, but never below what a key within the API's rate limits needs
        # (default 20/s for 2 * 60 s = 2400), so many keys do not starve each other
        self.per_key = max(1, cache_max // max(1, len(self.keys)), min(cache_max // 4, 4096))
        self._seen: OrderedDict[tuple[bytes, str], float] = OrderedDict()
        self._held: dict[bytes, int] = {}  # live cache entries per key

    def verify(self, method: str, path: str, body: bytes, headers, *,
               now: float | None = None, host: str | None = None) -> bytes:
        """Return the caller's 32-byte key, or raise RequestAuthError. `host`: the Host the
        request arrived under (one of this node's names); the request must be signed for it
        (`auth.node`), in the v2 format (`auth.unbound`). Without `host` nothing matches."""
        from nacl.exceptions import BadSignatureError
        from nacl.signing import VerifyKey

        now = time.time() if now is None else now
        vals = [headers.get(h) for h in (H_KEY, H_TIME, H_NONCE, H_SIG)]
        if not all(vals):
            raise RequestAuthError(codes.AUTH_MISSING, "request is not signed")
        key_text, ts, nonce, sig_hex = vals
        try:
            key = parse_verify_key(key_text)
            sig = bytes.fromhex(sig_hex)
            t = int(ts)
            if len(nonce) != 32:
                raise ValueError
            bytes.fromhex(nonce)
        except (SmpcError, ValueError):
            raise RequestAuthError(codes.AUTH_MALFORMED, "malformed signature headers") from None
        if key not in self.keys:
            raise RequestAuthError(codes.AUTH_UNKNOWN_KEY, "unknown key")
        if abs(now - t) > self.max_skew:
            raise RequestAuthError(codes.AUTH_SKEW, f"timestamp more than {self.max_skew:g}s "
                                   "from the node's clock")
        node = headers.get(H_NODE)
        if node is not None and not (0 < len(node) <= MAX_NODE and node.isprintable()
                                     and " " not in node):
            raise RequestAuthError(codes.AUTH_MALFORMED, "malformed signature headers")
        try:
            VerifyKey(key).verify(request_message(method, path, body, ts, nonce, node), sig)
        except BadSignatureError:
            raise RequestAuthError(codes.AUTH_SIGNATURE, "signature does not verify") from None
        except Exception:  # PyNaCl raises untyped errors for malformed input
            raise RequestAuthError(codes.AUTH_SIGNATURE, "signature does not verify") from None
        if node is None:  # a valid v1 signature: it names no node, so any node would take it
            raise RequestAuthError(codes.AUTH_UNBOUND, "the request's signature does not name "
                                   "the node (smpc-request-v1); sign it for this node "
                                   "(smpc-request-v2, X-Smpc-Node)")
        if host is None or node.lower() != host.lower():
            raise RequestAuthError(codes.AUTH_NODE, "the request is signed for another node")
        self._prune(now)
        if (key, nonce) in self._seen:
            raise RequestAuthError(codes.AUTH_REPLAY, "request replayed")
        if len(self._seen) >= self.cache_max or self._held.get(key, 0) >= self.per_key:
            raise RequestAuthError(codes.AUTH_BUSY, "too many recent requests; retry")
        self._seen[(key, nonce)] = now + 2 * self.max_skew
        self._held[key] = self._held.get(key, 0) + 1
        return key

    def _prune(self, now: float) -> None:
        while self._seen:
            k, exp = next(iter(self._seen.items()))
            if exp > now:
                break
            self._seen.popitem(last=False)
            left = self._held[k[0]] - 1
            if left:
                self._held[k[0]] = left
            else:
                del self._held[k[0]]


class RateLimiter:
    """A token bucket per key: `rate` requests per second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float):
        self.rate = rate
        self.burst = burst
        self._buckets: dict[bytes, tuple[float, float]] = {}

    def allow(self, key: bytes, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1, now)
        return True
