"""The node's HTTP API for analysts and operators, on aiohttp's server.

    POST   /jobs               submit a signed envelope (JSON body, signed request)
    GET    /jobs/<id>          the job's status: its submitter and this bank's operators
    GET    /jobs/<id>/result   the stored result: the submitter gets the outputs sealed to
                               them; values revealed to this bank only to its operators
    DELETE /jobs/<id>          withdraw a queued job (its submitter; Client.submit does it on
                               the nodes that accepted when another node refused)
    GET    /status             node status (current job id for operators only)
    GET    /metrics            Prometheus text (loopback without signature, else operators)
    GET    /health             {"status": "ok"}: no data, no signature (for start-up probes)

Every request passes, in order: Host check (the bound address, 127.0.0.1 / localhost / [::1]
with the API port, and api.allowed_hosts: a DNS-rebound name is refused), Origin check (any
Origin header is refused unless listed: browsers are not clients of this API), size limits
(request line and headers by aiohttp, body MAX_BODY), then the signature (mpc.node.reqauth:
it must name the Host the request came under, so a request sent to another node and played
here is refused, 401 `auth.node`), then the per-key rate limit (429 `rate.limited`). POST bodies must be application/json (415
otherwise, so a cross-site text/plain form cannot submit). Rejected requests are counted in
the metrics by code, never written to the audit log. Errors are `{"code", "reason"}` JSON.

With `[[api.client_certs]]` (mutual TLS, mpc.node.tlspin) a connection without a pinned client
certificate fails in the TLS handshake, before any HTTP; every request's certificate pin is
checked again (403 `auth.client_cert`) and a signed request must be signed by the pinned
certificate's owner (403 `auth.cert_owner`).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from mpc.node import codes
from mpc.node.config import is_loopback
from mpc.node.escape import escape
from mpc.node.manifest import MAX_MANIFEST_BYTES
from mpc.node.reqauth import RateLimiter, RequestAuthError, RequestVerifier
from mpc.node.store import public_record

if TYPE_CHECKING:
    from mpc.node.daemon import Node

log = logging.getLogger("smpc.node.api")

MAX_BODY = MAX_MANIFEST_BYTES + 4096


def _err(http_status: int, code: str, reason: str, **extra) -> web.Response:
    return web.json_response({**extra, "code": code, "reason": reason}, status=http_status)


class Api:
    def __init__(self, node: Node):
        self.node = node
        cfg = node.cfg
        self.operators = set(cfg.api.operator_keys)
        self.verifier = RequestVerifier(set(cfg.policy.analyst_keys) | self.operators,
                                        max_skew=cfg.api.max_skew)
        self.limiter = RateLimiter(cfg.api.rate, cfg.api.burst)
        self.runner: web.AppRunner | None = None
        self.address: tuple[str, int] | None = None
        self._hosts: set[str] = set()
        #: mutual TLS: pin -> owner key (empty: no client certificates asked for)
        self.pins = {c.spki_sha256: c.owner for c in cfg.api.client_certs}

    # ---------------------------------------------------------------- lifecycle ---
    async def start(self) -> tuple[str, int]:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard])
        app.router.add_post("/jobs", self._submit)
        app.router.add_get("/jobs/{job_id}", self._job)
        app.router.add_delete("/jobs/{job_id}", self._withdraw)
        app.router.add_get("/jobs/{job_id}/result", self._result)
        app.router.add_get("/status", self._status)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                    max_line_size=4096, max_field_size=4096)
        await self.runner.setup()
        cfg = self.node.cfg
        ctx = None
        if cfg.api.tls_cert is not None:
            from mpc.node.tlspin import server_context

            ctx = server_context(cfg.api.tls_cert, cfg.api.tls_key, cfg.api.client_certs)
        site = web.TCPSite(self.runner, cfg.api_host, cfg.api_port, ssl_context=ctx,
                           backlog=128)
        await site.start()
        sock = site._server.sockets[0]  # the bound port (api may say port 0)
        self.address = sock.getsockname()[:2]
        port = self.address[1]
        self._hosts = {f"{h}:{port}" for h in ("127.0.0.1", "localhost", "[::1]")}
        host = cfg.api_host if ":" not in cfg.api_host else f"[{cfg.api_host.strip('[]')}]"
        self._hosts.add(f"{host}:{port}")
        self._hosts.update(h.lower() for h in cfg.api.allowed_hosts)
        return self.address

    async def close(self) -> None:
        """Stop listening (the port is free when this returns) and end open requests."""
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    # ---------------------------------------------------------------- checks ---
    def _reject(self, http_status: int, code: str, reason: str, **extra) -> web.Response:
        self.node.metrics.reject(code)
        return _err(http_status, code, reason, **extra)

    @web.middleware
    async def _guard(self, request: web.Request, handler):
        self.node.metrics.requests += 1
        host = (request.headers.get("Host") or "").lower()
        if host not in self._hosts:
            log.warning("api: refused Host %s", escape(host, 100))
            return self._reject(421, codes.HTTP_HOST, "unexpected Host header")
        if "Origin" in request.headers and \
                request.headers["Origin"] not in self.node.cfg.api.allowed_hosts:
            return self._reject(403, codes.HTTP_ORIGIN, "cross-origin requests are refused")
        if request.content_length is not None and request.content_length > MAX_BODY:
            return self._reject(413, codes.HTTP_TOO_LARGE, "request body too large")
        if self.pins:  # mutual TLS: the handshake checked the chain; pin it to an owner
            from mpc.node.tlspin import ClientCertError, peer_pin

            try:
                owner = self.pins.get(peer_pin(request.transport) or "")
            except ClientCertError:
                owner = None
            if owner is None:
                return self._reject(403, codes.AUTH_CLIENT_CERT,
                                    "client certificate is not pinned here")
            request["cert_owner"] = owner
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return self._reject(413, codes.HTTP_TOO_LARGE, "request body too large")
        except web.HTTPException as e:
            if e.status == 404 or e.status == 405:
                return self._reject(e.status, codes.HTTP_NOT_FOUND, "no such endpoint")
            raise

    async def _auth(self, request: web.Request, body: bytes = b"") -> bytes | web.Response:
        try:
            # the Host was checked against this node's names in _guard: a request signed for
            # another node (played from one node to the next) is refused (issue 14)
            key = self.verifier.verify(request.method, request.path_qs, body, request.headers,
                                       host=request.headers.get("Host"))
        except RequestAuthError as e:
            return self._reject(401, e.code, str(e))
        owner = request.get("cert_owner")
        if owner is not None and key != owner:  # analyst A's certificate, B's signature
            log.warning("api: request signed by another key than its client certificate's "
                        "owner")
            return self._reject(403, codes.AUTH_CERT_OWNER, "the request's signing key is not "
                                "the owner of the client certificate")
        if not self.limiter.allow(key):
            return self._reject(429, codes.RATE_LIMITED, "too many requests; slow down",
                                retry_after=1)
        return key

    # ---------------------------------------------------------------- handlers ---
    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _submit(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return self._reject(415, codes.HTTP_CONTENT_TYPE, "POST bodies must be "
                                "application/json")
        body = await request.read()
        key = await self._auth(request, body)
        if isinstance(key, web.Response):
            return key
        try:
            env = json.loads(body)
        except (ValueError, RecursionError):  # deep nesting exhausts the parser's recursion
            return self._reject(400, codes.MANIFEST_MALFORMED, "body is not JSON")
        status, out = self.node.submit(env, key)
        if status >= 400:
            self.node.metrics.reject(out.get("code", "?"))
        headers = {"Retry-After": "5"} if status in (429, 503) else None
        return web.json_response(out, status=status, headers=headers)

    def _readable(self, key: bytes, job_id: str) -> dict | None:
        rec = self.node.store.get(job_id)
        if rec is None:
            return None
        if key in self.operators or rec.get("analyst") == key.hex():
            return rec
        return None  # not yours: indistinguishable from an unknown job

    async def _owned(self, request: web.Request) -> tuple[bytes, dict] | web.Response:
        """The signer and the job record of /jobs/<job_id>, if the signer may read it; a
        job the signer may not read is answered as an unknown one."""
        key = await self._auth(request)
        if isinstance(key, web.Response):
            return key
        rec = self._readable(key, request.match_info["job_id"])
        if rec is None:
            return self._reject(404, codes.JOB_UNKNOWN, "no such job here")
        return key, rec

    async def _job(self, request: web.Request) -> web.Response:
        got = await self._owned(request)
        if isinstance(got, web.Response):
            return got
        key, rec = got
        return web.json_response(public_record(rec))

    async def _withdraw(self, request: web.Request) -> web.Response:
        got = await self._owned(request)
        if isinstance(got, web.Response):
            return got
        key, rec = got
        status, out = await self.node.withdraw(rec["job_id"])
        return web.json_response(out, status=status)

    async def _result(self, request: web.Request) -> web.Response:
        got = await self._owned(request)
        if isinstance(got, web.Response):
            return got
        key, rec = got
        if rec["status"] != "done":
            return _err(409, rec["code"] or codes.JOB_NOT_DONE,
                        rec["reason"] or f"job is {rec['status']}", **{
                            k: v for k, v in public_record(rec).items()
                            if k not in ("code", "reason")})
        result = json.loads(rec["result"])
        if key not in self.operators:  # values revealed to this bank are for its operators
            result["outputs"] = {n: {k: v for k, v in o.items() if k != "values"}
                                 for n, o in result["outputs"].items()}
        return web.json_response({**public_record(rec), "result": result})

    async def _status(self, request: web.Request) -> web.Response:
        key = await self._auth(request)
        if isinstance(key, web.Response):
            return key
        out = self.node.status()
        if key not in self.operators:
            out = {k: v for k, v in out.items()
                   if k not in ("current_job", "jobs", "preprocessing")}
        return web.json_response(out)

    async def _metrics(self, request: web.Request) -> web.Response:
        peer = request.remote or ""
        if not is_loopback(peer):
            key = await self._auth(request)
            if isinstance(key, web.Response):
                return key
            if key not in self.operators:
                return self._reject(403, codes.AUTH_FORBIDDEN, "metrics are for operators")
        return web.Response(text=self.node.metrics_text(), content_type="text/plain",
                            headers={"X-Content-Type-Options": "nosniff"})
