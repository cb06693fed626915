"""Signed API requests: every request to a node's API (except /health, and /metrics from
loopback) carries the caller's Ed25519 signature over

    "smpc-request-v1" \\n METHOD \\n PATH?QUERY \\n hex(SHA-256(body)) \\n TIMESTAMP \\n NONCE

in four headers: X-Smpc-Key (ed25519:<hex>), X-Smpc-Timestamp (unix seconds), X-Smpc-Nonce
(32 hex digits, fresh per request) and X-Smpc-Signature (hex). The node refuses a timestamp
more than `max_skew` seconds from its clock (`auth.skew`) and a (key, nonce) pair it has seen
within the skew window (`auth.replay`), so a recorded request cannot be played again. Only keys
the node knows (policy.analyst_keys, api.operator_keys) are accepted (`auth.unknown_key`)."""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict

from mpc.node import codes
from mpc.node.manifest import VERIFY_PREFIX, parse_verify_key
from network.errors import SmpcError

CONTEXT = b"smpc-request-v1"
H_KEY, H_TIME, H_NONCE, H_SIG = ("X-Smpc-Key", "X-Smpc-Timestamp", "X-Smpc-Nonce",
                                 "X-Smpc-Signature")


class RequestAuthError(SmpcError):
    """A request is unsigned, wrongly signed, stale, replayed or from an unknown key."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def request_message(method: str, path: str, body: bytes, timestamp: str, nonce: str) -> bytes:
    return b"\n".join([CONTEXT, method.upper().encode(), path.encode(),
                       hashlib.sha256(body).hexdigest().encode(), timestamp.encode(),
                       nonce.encode()])


def sign_request(seed: bytes, method: str, path: str, body: bytes = b"", *,
                 now: float | None = None) -> dict[str, str]:
    """The four headers that sign one request with the Ed25519 key `seed`."""
    from nacl.signing import SigningKey

    sk = SigningKey(seed)
    ts = str(int(time.time() if now is None else now))
    nonce = os.urandom(16).hex()
    sig = sk.sign(request_message(method, path, body, ts, nonce)).signature
    return {H_KEY: VERIFY_PREFIX + bytes(sk.verify_key).hex(), H_TIME: ts, H_NONCE: nonce,
            H_SIG: sig.hex()}


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
               now: float | None = None) -> bytes:
        """Return the caller's 32-byte key, or raise RequestAuthError."""
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
        try:
            VerifyKey(key).verify(request_message(method, path, body, ts, nonce), sig)
        except BadSignatureError:
            raise RequestAuthError(codes.AUTH_SIGNATURE, "signature does not verify") from None
        except Exception:  # PyNaCl raises untyped errors for malformed input
            raise RequestAuthError(codes.AUTH_SIGNATURE, "signature does not verify") from None
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
