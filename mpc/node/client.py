"""The analyst's client for running nodes.

    >>> from mpc import Client
    >>> c = Client(["http://127.0.0.1:7100", "http://127.0.0.1:7101", "http://127.0.0.1:7102"],
    ...            key="analyst.key")
    >>> job = c.submit("manifest.toml")              # or a dict, or submit("aggregate_sum", ...)
    >>> c.status(job)                                # {node url: {"status": ..., "step": ...}}
    >>> res = c.result(job, timeout=120)             # JobResult: .outputs, .stats

`submit` signs the manifest with the analyst's Ed25519 key and sends the same envelope to
every node (the nodes then agree on its hash among themselves). Every HTTP request is itself
signed with the same key (mpc.node.reqauth: method, the node's address as this client
addressed it, path, body hash, timestamp, nonce), so only this analyst can read its jobs'
status and results, and a node cannot play a request it received to another node. A manifest without `consortium` gets
the nodes' consortium id, one without `not_after` expires DEFAULT_LIFETIME seconds from now.
If some node refuses a submission, `submit` withdraws it from the nodes that accepted it. `result` waits until every
node has finished; if any node failed or refused it raises `JobFailedError` with every
node's code and reason. Outputs addressed to "analyst" arrive as one sealed share per node;
only this key can open them, and the client reconstructs and decodes them here. For a
SPDZ2k job (scheme additive, security malicious: the result's agreed metadata) each node also
seals its MAC share and MAC key share, and the client checks every output's MAC before it
returns anything (`OutputIntegrityError` otherwise).
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mpc.node import codes
from mpc.node.manifest import (
    DEFAULT_LIFETIME,
    Manifest,
    load_manifest_file,
    load_signing_key,
    sign_manifest,
)
from mpc.node.reqauth import node_authority, sign_request
from network.errors import SmpcError

TERMINAL = ("done", "failed", "refused")


class ClientError(SmpcError):
    """A node could not be reached or answered nonsense."""


class OutputIntegrityError(ClientError):
    """An output of a SPDZ2k job (malicious additive consortium) failed the analyst's MAC
    check: some node sealed a share, MAC share or key share other than the protocol's. The
    message names the output and job, never values; nothing of the result is returned."""

    code = "security.cheating_detected"


class SubmissionRejected(SmpcError):
    """At least one node rejected the submission; `reasons` maps node -> (code, reason)."""

    def __init__(self, message: str, reasons: dict[str, tuple[str, str]]):
        super().__init__(message)
        self.reasons = reasons


class JobFailedError(SmpcError):
    """The job failed or was refused; `reasons` maps node -> (status, code, reason)."""

    def __init__(self, message: str, reasons: dict[str, tuple[str, str, str]]):
        super().__init__(message)
        self.reasons = reasons


class ResultTimeoutError(SmpcError):
    """The job did not finish on every node before the timeout."""


def _check_private(path: str | os.PathLike) -> None:
    """A private key file must not be readable by group or others (as network.keys)."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise ClientError(f"{path}: cannot open key file: {e.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ClientError(f"{path}: private key file is accessible by group or others "
                          f"(mode {stat.S_IMODE(mode):04o}); run chmod 600 {path}")


@dataclass
class JobResult:
    job_id: str
    computation: str
    outputs: dict[str, Any]
    stats: dict[str, dict] = field(default_factory=dict)


class Client:
    def __init__(self, nodes: list[str], key: str | os.PathLike | bytes, *,
                 http_timeout: float = 30.0, consortium: str | None = None,
                 tls_ca: str | os.PathLike | None = None,
                 tls_cert: str | os.PathLike | None = None,
                 tls_key: str | os.PathLike | None = None):
        """`tls_ca`: a CA bundle (or a node's self-signed certificate) that https:// node
        URLs must chain to; the system's trust store otherwise. `tls_cert` / `tls_key`: this
        client's certificate and its private key (mode 0600; `smpc keygen --tls-client`) for
        nodes that require pinned client certificates (mutual TLS, mpc.node.tlspin); the
        nodes bind the certificate to `key`, so it must be the one pinned for this key."""
        import ssl

        if not nodes:
            raise ClientError("Client needs at least one node URL")
        if tls_key is not None and tls_cert is None:
            raise ClientError("tls_key needs tls_cert")
        self.nodes = [u.rstrip("/") for u in nodes]
        for u in self.nodes:  # every request is signed for its node's host:port (issue 14)
            try:
                node_authority(u)
            except ValueError as e:
                raise ClientError(f"{e} (want http[s]://host:port)") from None
        self.key = key if isinstance(key, bytes) else load_signing_key(key)
        self.http_timeout = http_timeout
        self.consortium = consortium
        self._ssl = None
        if tls_ca is not None or tls_cert is not None:
            self._ssl = ssl.create_default_context(cafile=str(tls_ca) if tls_ca else None)
        if tls_cert is not None:
            if tls_key is not None:
                _check_private(tls_key)
            try:
                self._ssl.load_cert_chain(tls_cert, tls_key)
            except (OSError, ssl.SSLError) as e:
                raise ClientError(f"cannot load the client certificate {tls_cert}: {e}") from None

    # ---------------------------------------------------------------- HTTP ---
    def request(self, node: str, method: str, path: str, body: dict | None = None
                ) -> tuple[int, dict]:
        """One signed request to one node; returns (HTTP status, JSON body)."""
        return self._call(node, method, path, body)

    def _call(self, node: str, method: str, path: str, body: dict | None = None
              ) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else b""
        try:
            host = node_authority(node)
        except ValueError as e:
            raise ClientError(str(e)) from None
        # signed for this node (issue 14): the node checks it is the Host it received, so
        # no node can play this request to another; the Host sent is the one signed
        headers = {**sign_request(self.key, method, path, data, node=host), "Host": host}
        if body is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(node + path, data=data if body is not None else None,
                                     method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.http_timeout,  # noqa: S310
                                        context=self._ssl) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                return e.code, json.loads(e.read())
            except ValueError:
                return e.code, {"code": codes.HTTP_ERROR, "reason": str(e)}
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise ClientError(f"node {node} unreachable: {getattr(e, 'reason', e)}") from None

    # ---------------------------------------------------------------- API ---
    def consortium_id(self) -> str:
        """The nodes' consortium id (from the first node's signed /status), cached."""
        if self.consortium is None:
            status, body = self._call(self.nodes[0], "GET", "/status")
            if status != 200 or not isinstance(body.get("consortium"), str):
                raise ClientError(f"node {self.nodes[0]} did not tell its consortium: "
                                  f"{body.get('code')}: {body.get('reason')}")
            self.consortium = body["consortium"]
        return self.consortium

    def sign(self, manifest: dict | str | os.PathLike | Manifest, **kw: Any) -> Manifest:
        if isinstance(manifest, Manifest):
            return manifest
        if isinstance(manifest, str) and not kw.get("_is_path") and (
                kw or Path(manifest).suffix not in (".toml", ".json")):
            body = {"computation": manifest, **kw}
            body.setdefault("idempotency_key", os.urandom(8).hex())
            body.setdefault("recipients", ["analyst"])
        elif isinstance(manifest, str | os.PathLike):
            body = load_manifest_file(manifest)
            if "manifest" in body and "signature" in body:
                body = body["manifest"]
        else:
            body = dict(manifest)
        body.pop("analyst", None)  # re-signed with this client's key
        if "consortium" not in body:
            body["consortium"] = self.consortium_id()
        body.setdefault("not_after", int(time.time()) + DEFAULT_LIFETIME)
        return sign_manifest(body, self.key)

    def post_job(self, node: str, m: Manifest, run: str) -> tuple[int, dict]:
        """Send one signed envelope to one node, with the submission's run nonce (the same
        for every node of one submission; it binds the job's session to this attempt)."""
        return self._call(node, "POST", "/jobs", {**m.envelope(), "run": run})

    def submit(self, manifest: dict | str | os.PathLike | Manifest, **kw: Any) -> str:
        """Sign (if needed) and send to every node; returns the job id. Raises
        SubmissionRejected if any node rejects it (with every node's reason); the nodes
        that accepted it are told to withdraw it."""
        m = self.sign(manifest, **kw)
        run = os.urandom(16).hex()
        reasons, accepted = {}, []
        for node in self.nodes:
            status, body = self.post_job(node, m, run)
            if status >= 400:
                reasons[node] = (body.get("code", "?"), body.get("reason", ""))
            elif status == 202:
                accepted.append(node)
        if reasons:
            for node in accepted:
                self._call(node, "DELETE", f"/jobs/{m.job_id}")
            first = next(iter(reasons.values()))
            raise SubmissionRejected(f"job {m.job_id} rejected by {len(reasons)} node(s): "
                                     f"{first[0]}: {first[1]}", reasons)
        return m.job_id

    def status(self, job_id: str) -> dict[str, dict]:
        out = {}
        for node in self.nodes:
            _, body = self._call(node, "GET", f"/jobs/{job_id}")
            out[node] = body
        return out

    def wait(self, job_id: str, timeout: float = 300.0, *, poll: float = 0.2,
             progress=None) -> dict[str, dict]:
        """Poll until every node reports a terminal status; returns the last statuses."""
        t_end = time.monotonic() + timeout
        last = None
        while True:
            st = self.status(job_id)
            view = {n: (b.get("status"), b.get("step")) for n, b in st.items()}
            if progress is not None and view != last:
                progress(st)
            last = view
            if all(b.get("status") in TERMINAL or b.get("code") == codes.JOB_UNKNOWN
                   for b in st.values()):
                return st
            if time.monotonic() > t_end:
                raise ResultTimeoutError(f"job {job_id} not finished after {timeout:g}s: "
                                         f"{ {n: v for n, v in view.items()} }")
            time.sleep(poll)

    def result(self, job_id: str, timeout: float = 300.0, *, progress=None) -> JobResult:
        """Wait for the job, then open and reconstruct the outputs addressed to the analyst.
        Raises JobFailedError (every node's reason) if any node did not finish it."""
        st = self.wait(job_id, timeout, progress=progress)
        bad = {n: (b.get("status"), b.get("code"), b.get("reason")) for n, b in st.items()
               if b.get("status") != "done"}
        if bad:
            n0, (status, code, reason) = next(iter(bad.items()))
            raise JobFailedError(f"job {job_id} {status} at {len(bad)} node(s): {code}: {reason}",
                                 bad)
        results = {}
        for node in self.nodes:
            _, body = self._call(node, "GET", f"/jobs/{job_id}/result")
            results[node] = body
        return self._reconstruct(job_id, results)

    def _reconstruct(self, job_id: str, results: dict[str, dict]) -> JobResult:
        """Open and decode every output addressed to the analyst from every node's result
        (checked alike by `_agreed` first). Semi-honest and Shamir: the sealed value shares
        are reconstructed (Shamir's consistency is checked by the scheme). SPDZ2k (the
        agreed metadata says scheme additive, security malicious): each output's MAC is
        checked first (`_open_spdz2k`); if any output fails, OutputIntegrityError is raised
        and nothing is returned."""
        from nacl.public import SealedBox
        from nacl.signing import SigningKey

        from mpc.local import make_scheme
        from mpc.node.jobs import finish_outputs
        from mpc.node.runner import domain_for
        from protocols.arith.fixedpoint import FixedPoint

        rs = _agreed(job_id, results)
        meta = rs[0]
        dom = domain_for(meta["scheme"])
        sch = make_scheme(meta["scheme"], dom, meta["n"], meta["t"])
        box = SealedBox(SigningKey(self.key).to_curve25519_private_key())
        values: dict[str, np.ndarray] = {}
        spdz = meta["scheme"] == "additive" and meta.get("security") == "malicious"
        for name, entry in meta["outputs"].items():
            if "sealed" not in entry:
                continue
            if spdz:  # issue 16: the MAC check mod 2^(k+s), then x mod 2^k
                values[name] = FixedPoint(dom, entry["f"]).decode(
                    self._open_spdz2k(job_id, name, rs, box))
                continue
            shares = {}
            for r in rs:
                e = r["outputs"][name]
                try:
                    raw = box.decrypt(base64.b64decode(e["sealed"]))
                except Exception as ex:  # PyNaCl: untyped errors
                    raise ClientError(f"cannot open party {r['pid']}'s share of {name}: "
                                      f"{type(ex).__name__}") from None
                w = np.frombuffer(raw, dtype=np.dtype(e["wire_dtype"])).reshape(e["wire_shape"])
                shares[r["pid"]] = dom.from_wire(w.copy(), tuple(e["shape"]))
            v = sch.reconstruct(shares)
            values[name] = FixedPoint(dom, entry["f"]).decode(v)
        stats = {n: b.get("stats", {}) for n, b in results.items()}
        return JobResult(job_id, meta["computation"], finish_outputs(meta["computation"], values,
                                                         meta.get("parameters")),
                         stats)


    @staticmethod
    def _open_spdz2k(job_id: str, name: str, rs: list[dict], box) -> np.ndarray:
        """One SPDZ2k output (mpc.node.runner Runner._seal_spdz2k): every node's sealed
        (x_i + 2^k r_i, m_i, alpha_i), checked with spdz2k.open_client_output: sum m_i =
        (sum alpha_i)(sum x_i) mod 2^128 element by element [Cramer et al., SPDZ2k, CRYPTO
        2018, section 3: a node that shifts its shares passes with probability at most 2^-s,
        s = 64]. Returns x mod 2^64 (uint64); raises OutputIntegrityError (naming the output)
        on any failure or malformed share, ClientError if a share cannot be opened."""
        from protocols.malicious import spdz2k

        xs, ms, alphas = [], [], []
        for r in rs:
            e = r["outputs"][name]
            dims = e.get("shape")
            if not isinstance(dims, list) or not all(
                    isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 1 << 31
                    for d in dims):
                raise OutputIntegrityError(f"job {job_id}: output {name!r} has a malformed shape")
            n_el = int(np.prod(dims, dtype=np.int64))
            want = (2 * n_el + 1) * 16
            try:
                raw = box.decrypt(base64.b64decode(e["sealed"]))
            except Exception as ex:  # PyNaCl: untyped errors; a missing or malformed field
                raise ClientError(f"cannot open party {r['pid']}'s share of {name}: "
                                  f"{type(ex).__name__}") from None
            if len(raw) != want:
                raise OutputIntegrityError(f"job {job_id}: party {r['pid']}'s share of output "
                                           f"{name!r} is malformed")
            w = np.frombuffer(raw, dtype="<u8").astype(np.uint64).reshape(2 * n_el + 1, 2)
            shape = (*dims, 2)
            xs.append(w[:n_el].reshape(shape))
            ms.append(w[n_el:2 * n_el].reshape(shape))
            alphas.append(w[2 * n_el])
        got = spdz2k.open_client_output(xs, ms, alphas)
        if got is None:
            raise OutputIntegrityError(f"job {job_id}: output {name!r} failed the MAC check "
                                       "(a node sealed a wrong share); no output is returned")
        return got


#: result fields every node must report alike (an output's "sealed" share and "values"
#: differ per node; everything else about an output must not)
_SHARED = ("scheme", "n", "t", "security", "computation", "parameters")
_OWN = ("sealed", "values")


def _agreed(job_id: str, results: dict[str, dict]) -> list[dict]:
    """The nodes' results, checked against each other before any share is read: the same
    job, the same metadata (scheme, n, t, computation, parameters, each output's scale and
    shape) at every node, and distinct party indices. A cheating node could otherwise decide
    how every node's share is decoded (the first node's metadata was taken as is) or claim
    another node's index, so that its share replaces that node's and the Shamir consistency
    check of the reconstruction is skipped. Raises ClientError naming the nodes."""
    rs: dict[str, dict] = {}
    for node, body in results.items():
        r = body.get("result") if isinstance(body, dict) else None
        if body.get("job_id") != job_id or not isinstance(r, dict) or \
                not isinstance(r.get("outputs"), dict):
            raise ClientError(f"node {node} answered without the result of job {job_id}")
        rs[node] = r

    def view(r: dict) -> tuple:
        outs = {k: {f: v for f, v in e.items() if f not in _OWN} if isinstance(e, dict) else e
                for k, e in r["outputs"].items()}
        return tuple(r.get(k) for k in _SHARED), outs

    first, ref = next(iter(rs.items()))
    for node, r in rs.items():
        if view(r) != view(ref):
            raise ClientError(f"nodes {first} and {node} disagree about job {job_id}'s result "
                              "(scheme, parties, computation, parameters or output format)")
    n = ref.get("n")
    pids = [r.get("pid") for r in rs.values()]
    if not isinstance(n, int) or not all(isinstance(p, int) and 0 <= p < n for p in pids) \
            or len(set(pids)) != len(pids):
        raise ClientError(f"job {job_id}: the nodes' party indices {pids} are not distinct "
                          f"party indices of {n} parties")
    return list(rs.values())
