"""One node's configuration: a TOML file, validated at start.

Every error names the offending field (`NodeConfigError: peers[1].public_key: ...`). Secrets are
never in the file: the node's private key is a path (`node.key_file`, mode 0600), database
passwords come from the environment / PGPASSFILE (a `password=` in a DSN is refused).

Example (what `smpc init` writes; relative paths are relative to the file's folder):

    [node]
    name = "bank0"
    index = 0                      # 0-based party index; Shamir x-coordinate index + 1
    key_file = "bank0.key"         # X25519 private key (smpc keygen), mode 0600
    listen = "127.0.0.1:7000"      # where peers reach this node for job sessions
    api = "127.0.0.1:7100"         # analysts' HTTP API; loopback unless [api] TLS is set
    state_dir = "bank0-state"      # jobs database and audit log
    # broker_username = "bank0"    # MQTT broker account (Mosquitto password_file + acl_file)
    # broker_password_file = "bank0.broker-password"   # mode 0600; never the password inline

    [consortium]                   # must be identical on every node (checked per job)
    id = "demo"
    scheme = "additive"            # additive (Z_2^64) | shamir (GF(2^127-1))
    # threshold = 1                # shamir only; default (n-1)//2
    transport = "tcp"              # tcp | mqtt
    broker = "mqtt://127.0.0.1:1883"
    preprocessing = "ot"           # ot (additive) | dn07 (shamir) | dealer | shared_seed_dealer
    # security = "semi-honest"     # semi-honest | malicious (abort on cheating): shamir with
                                   # n = 2t + 1 (Chida et al.), or additive with any n >= 2
                                   # (SPDZ2k, up to n - 1 corrupt; preprocessing = "ot", no
                                   # [preprocessing] target; runs aggregate_sum / _mean
                                   # without DP and the three trainers; fraud jobs and DP
                                   # are refused with security.unsupported)
    # cipher = "ChaChaPoly"        # Noise cipher of the peer links: ChaChaPoly | AESGCM (tcp only;
                                   # AESGCM is ~3x faster on CPUs with AES-NI)

    [timeouts]                     # seconds
    connect = 30
    receive = 60
    job = 600

    [[peers]]
    index = 1
    name = "bank1"
    address = "127.0.0.1:7001"
    public_key = "x25519:..."

    [sources.transactions]
    kind = "csv"                   # csv | sqlite | postgres | parquet
    path = "bank0.csv"
    [sources.transactions.columns.amount]   # with any columns table, only named columns
    computations = ["aggregate_sum"]        #   may be used (default: every computation)
    aggregate_only = true          # never a per-row output (fraud_score's scores)
    bounds = [0, 10000]            # clipped under MPC before aggregates; DP sensitivity

    [policy]
    allowed_computations = ["aggregate_sum", "logistic_regression"]
    allowed_recipients = ["analyst"]
    analyst_keys = ["ed25519:..."]
    min_group_size = 10            # k: group size and flagged count, each
    max_rows = 1000000
    approved_models = []           # fraud scoring models by hash (mpc.node.policy.model_hash)
    approved_models_file = "approved-models.txt"   # more hashes, re-read at every job
    allow_reveal_scores = false    # fraud_score: flags only, never per-row scores
    allow_stored_models = true     # fraud jobs may use models kept as shares (store_model)
    approved_thresholds = [0.5]    # thresholds allowed with a stored model

    [policy.dp]                    # released aggregates get DP noise generated under MPC
    epsilon = 1.0                  # per job and (analyst, source)
    delta = 0.0                    # > 0 with mechanism = "gaussian"
    mechanism = "laplace"          # laplace | gaussian
    budget_epsilon = 10.0          # total per (analyst, source) (mpc.node.budget)
    budget_delta = 1e-6
    models = "optional"            # trained coefficients: noised when the job asks for
                                   # epsilon; "required": always (protocols.apps.ml.private)

    [api]                          # all optional
    operator_keys = ["ed25519:..."]  # this bank's operators: read any job, results, metrics
    allowed_hosts = []             # extra Host header values (default: the bound address,
                                   # 127.0.0.1 / localhost / [::1] with the API port)
    max_queue = 64                 # queued jobs beyond this get 429 queue.full
    max_queued_per_analyst = 16    # one analyst key's queued jobs beyond this get 429
                                   # queue.analyst (default max(1, max_queue // 4))
    rate = 20.0                    # signed requests per second per key (token bucket)
    burst = 50
    max_skew = 60                  # seconds a request's timestamp may differ from our clock
    tls_cert = "api.crt"           # both set: the API serves HTTPS and may bind beyond
    tls_key = "api.key"            # loopback (without them a non-loopback api is refused)
    [[api.client_certs]]           # mutual TLS: only these client certificates connect,
    owner = "ed25519:..."          # each bound to one analyst / operator key (mpc.node.tlspin)
    cert = "alice-tls.crt"         # smpc keygen --tls-client writes it and prints the pin
    spki_sha256 = "3f0c..."

    [preprocessing]                # optional: precompute while idle (mpc.node.precompute)
    target = { logistic_regression = 2 }   # stored batches to keep per recorded job shape
    idle_after = 10                # seconds without jobs before the node precomputes
    max_shapes = 4                 # job shapes (plans) remembered per node

    [insecure]                     # each one makes the daemon refuse to start without --insecure
    plaintext_channels = false
    allow_dealer_node = false      # permits preprocessing = "dealer"
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpc.node.policy_config import ColumnPolicy, DPPolicy, parse_columns, parse_dp
from network.errors import SmpcError

if TYPE_CHECKING:
    from mpc.node.tlspin import ClientCert

SCHEMES = ("additive", "shamir")
TRANSPORTS = ("tcp", "mqtt")
#: per-job preprocessing sources the daemon knows; the last two are insecure conveniences
#: (rss3: additive, exactly 3 parties, semi-honest with an honest majority)
PREPROCESSING = ("ot", "dn07", "rss3", "dealer", "shared_seed_dealer")
SOURCE_KINDS = ("csv", "sqlite", "postgres", "parquet")
ANALYST = "analyst"  # the recipient name for "the analyst who signed the manifest"


class NodeConfigError(SmpcError):
    """The node configuration is invalid; the message starts with the offending field."""


class InsecureConfigError(NodeConfigError):
    """The configuration enables an insecure option and the daemon was not run --insecure."""


#: deprecated name of NodeConfigError (protocols.errors.ParameterError is the protocols' one)
ConfigError = NodeConfigError


@dataclass(frozen=True)
class Peer:
    index: int
    name: str
    host: str
    port: int
    public_key: bytes


@dataclass(frozen=True)
class SourceConfig:
    name: str
    kind: str
    path: Path | None = None
    query: str | None = None
    dsn: str | None = None
    #: per-column policy; None: the source states none (every column usable, a warning at
    #: start), else only the columns named here may be used
    columns: dict[str, ColumnPolicy] | None = None


@dataclass(frozen=True)
class PolicyConfig:
    allowed_computations: tuple[str, ...] = ()
    allowed_recipients: tuple[str, ...] = (ANALYST,)
    analyst_keys: tuple[bytes, ...] = ()
    min_group_size: int = 1
    max_rows: int = 10_000_000
    #: scoring models (coef, intercept, threshold, proba) approved by hash (policy.model_hash)
    approved_models: tuple[str, ...] = ()
    #: a file of further approved hashes, one a line, re-read at every job (None: none)
    approved_models_file: Path | None = None
    #: fraud_score may reveal per-row scores (to the querying bank, its own rows only)
    allow_reveal_scores: bool = False
    #: None: aggregates are released exactly (no DP; a warning at start)
    dp: DPPolicy | None = None
    #: fraud jobs may score with models stored as shares here (mpc.node.models)
    allow_stored_models: bool = True
    #: thresholds allowed with a stored model (a public model's is part of its hash)
    approved_thresholds: tuple[float, ...] = (0.5,)


@dataclass(frozen=True)
class ApiConfig:
    operator_keys: tuple[bytes, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    max_queue: int = 64
    rate: float = 20.0
    burst: int = 50
    max_skew: float = 60.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: mutual TLS (issue 14): the pinned client certificates (mpc.node.tlspin.ClientCert)
    client_certs: tuple[ClientCert, ...] = ()
    #: issue 14: one analyst key's share of the queue (jobs waiting, as max_queue counts
    #: them), so that one analyst cannot fill it and lock the others out; None: the default
    #: max(1, max_queue // 4)
    max_queued_per_analyst: int | None = None

    def __post_init__(self):
        if self.max_queued_per_analyst is None:
            object.__setattr__(self, "max_queued_per_analyst", max(1, self.max_queue // 4))


#: bounds of [preprocessing] (a batch can be hundreds of MB on disk: keep the counts small)
MAX_TARGET = 8
MAX_SHAPES = 16


@dataclass(frozen=True)
class PrecomputeConfig:
    """[preprocessing]: what the node precomputes while idle (mpc.node.precompute).
    `target`: computation -> stored batches to keep per plan (empty: never precompute)."""

    target: dict[str, int] = field(default_factory=dict)
    idle_after: float = 10.0
    max_shapes: int = 4


@dataclass(frozen=True)
class NodeConfig:
    path: Path
    name: str
    index: int
    key_file: Path
    host: str
    port: int
    api_host: str
    api_port: int
    state_dir: Path
    consortium_id: str
    scheme: str
    threshold: int | None
    transport: str
    broker_host: str
    broker_port: int
    preprocessing: str
    peers: tuple[Peer, ...]
    sources: dict[str, SourceConfig]
    policy: PolicyConfig
    connect_timeout: float = 30.0
    receive_timeout: float = 60.0
    job_timeout: float = 600.0
    plaintext_channels: bool = False
    allow_dealer_node: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    broker_username: str | None = None  # issue 14: broker account (mpc.node.broker_auth)
    broker_password_file: Path | None = None
    api: ApiConfig = field(default_factory=ApiConfig)
    #: consortium.security: "semi-honest" or "malicious" (security with abort: Shamir with an
    #: honest majority, or additive SPDZ2k with a dishonest majority)
    security: str = "semi-honest"
    #: consortium.cipher: the Noise cipher of the TCP peer links, "ChaChaPoly" (default) or
    #: "AESGCM" (issue 15: ~3x the AEAD throughput with AES-NI); the same on every node
    cipher: str = "ChaChaPoly"
    #: [preprocessing] (issue 15): precompute while idle
    precompute: PrecomputeConfig = field(default_factory=PrecomputeConfig)

    def broker_password(self) -> str | None:
        """The broker password, read from node.broker_password_file (mode 0600)."""
        if self.broker_password_file is None:
            return None
        try:
            st = os.stat(self.broker_password_file)
            if st.st_mode & 0o077:
                raise _err("node.broker_password_file", f"{self.broker_password_file} is "
                           "readable by group or others; chmod 600 it")
            return self.broker_password_file.read_text().strip()
        except OSError as e:
            raise _err("node.broker_password_file", f"cannot read: {e.strerror}") from None

    @property
    def n(self) -> int:
        return len(self.peers) + 1

    @property
    def t(self) -> int | None:
        if self.scheme != "shamir":
            return None
        return (self.n - 1) // 2 if self.threshold is None else self.threshold

    def party_names(self) -> list[str]:
        names = [""] * self.n
        names[self.index] = self.name
        for p in self.peers:
            names[p.index] = p.name
        return names

    def addresses(self) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = [("", 0)] * self.n
        out[self.index] = (self.host, self.port)
        for p in self.peers:
            out[p.index] = (p.host, p.port)
        return out

    def fingerprint(self, own_public_key: bytes) -> str:
        """Hash of what every node must agree on: consortium id, scheme, threshold, transport,
        preprocessing, security (when malicious), cipher (when not ChaChaPoly), and every
        party's index, name and public key."""
        parties = {p.index: [p.name, p.public_key.hex()] for p in self.peers}
        parties[self.index] = [self.name, own_public_key.hex()]
        body = {
            "id": self.consortium_id, "scheme": self.scheme, "t": self.t,
            "transport": self.transport, "preprocessing": self.preprocessing,
            "parties": [parties[i] for i in range(self.n)],
        }
        if self.security != "semi-honest":  # semi-honest fingerprints stay as they were
            body["security"] = self.security
        if self.cipher != "ChaChaPoly":  # likewise: ChaChaPoly consortia keep their fingerprint
            body["cipher"] = self.cipher
        raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.blake2b(raw, digest_size=16, person=b"smpc-consortium").hexdigest()

    def insecure_options(self) -> list[str]:
        """Every insecure option this configuration enables, named by field (T20)."""
        bad = []
        if self.plaintext_channels:
            bad.append("insecure.plaintext_channels = true (unencrypted, unauthenticated channels)")
        if self.preprocessing == "shared_seed_dealer":
            bad.append("consortium.preprocessing = 'shared_seed_dealer' (every party can derive "
                       "every triple)")
        if self.preprocessing == "dealer" and not self.allow_dealer_node:
            bad.append("consortium.preprocessing = 'dealer' without insecure.allow_dealer_node = true "
                       "(a dealer node that must not collude with any party)")
        if not is_loopback(self.api_host) and not self.api.client_certs:
            bad.append(f"node.api = {self.api_host!r} beyond loopback without api.client_certs "
                       "(server TLS only: any host that reaches the port gets an HTTP parser; "
                       "clients are authenticated by request signature only)")
        if self.scheme == "shamir" and self.t is not None and (2 * self.t >= self.n or self.t < 1):
            bad.append(f"consortium.threshold = {self.t} with n = {self.n} (Shamir needs "
                       f"1 <= t < n/2)")
        return bad


def _err(fieldname: str, msg: str) -> NodeConfigError:
    return NodeConfigError(f"{fieldname}: {msg}")


def _get(table: dict, key: str, prefix: str, typ, *, default: Any = ..., check=None):
    name = f"{prefix}{key}"
    if key not in table:
        if default is ...:
            raise _err(name, "missing")
        return default
    v = table[key]
    if typ is float and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if isinstance(v, bool) and typ is not bool or not isinstance(v, typ):
        tn = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise _err(name, f"must be {tn}, got {type(v).__name__} {v!r}")
    if check is not None:
        problem = check(v)
        if problem:
            raise _err(name, problem)
    return v


def parse_address(text: str, fieldname: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise _err(fieldname, f"must be host:port, got {text!r}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """True for 'localhost' and loopback IP literals (127.0.0.0/8, ::1), parsed as addresses:
    a name such as '127.attacker.example' is not loopback."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _positive(v):
    return None if v > 0 else f"must be > 0, got {v}"


def _parse_broker(text: str) -> tuple[str, int]:
    t = text
    if t.startswith("mqtt://"):
        t = t[len("mqtt://"):]
    elif "://" in t:
        raise _err("consortium.broker", f"only mqtt:// URLs are supported, got {text!r}")
    if "@" in t:
        raise _err("consortium.broker", "credentials do not belong in the config")
    if ":" not in t:
        return t, 1883
    return parse_address(t, "consortium.broker")


def _rel(base: Path, p: str) -> Path:
    q = Path(os.path.expanduser(p))
    return q if q.is_absolute() else (base / q)


def load_config(path: str | os.PathLike) -> NodeConfig:
    """Read and validate a node configuration. Raises NodeConfigError naming the bad field."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise NodeConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as e:
        raise NodeConfigError(f"{path}: not valid TOML: {e}") from None
    return parse_config(raw, path)


def parse_config(raw: dict, path: Path) -> NodeConfig:
    from network.keys import parse_public_key

    base = path.parent
    known = {"node", "consortium", "timeouts", "peers", "sources", "policy", "insecure", "api",
             "preprocessing"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise _err(unknown[0], f"unknown section (known: {sorted(known)})")
    node = _get(raw, "node", "", dict)
    name = _get(node, "name", "node.", str, check=lambda v: None if v else "must not be empty")
    index = _get(node, "index", "node.", int, check=lambda v: None if v >= 0 else "must be >= 0")
    key_file = _rel(base, _get(node, "key_file", "node.", str))
    host, port = parse_address(_get(node, "listen", "node.", str), "node.listen")
    api_host, api_port = parse_address(_get(node, "api", "node.", str, default="127.0.0.1:0"),
                                       "node.api")
    state_dir = _rel(base, _get(node, "state_dir", "node.", str, default=f"{name}-state"))
    broker_user = _get(node, "broker_username", "node.", str, default=None)
    broker_pw = _get(node, "broker_password_file", "node.", str, default=None)
    if (broker_user is None) != (broker_pw is None):
        raise _err("node.broker_password_file" if broker_pw is None else "node.broker_username",
                   "broker_username and broker_password_file go together")
    for k in node:
        if k not in ("name", "index", "key_file", "listen", "api", "state_dir",
                     "broker_username", "broker_password_file"):
            if k in ("private_key", "secret", "password", "key", "broker_password"):
                raise _err(f"node.{k}", "secrets never go in the config; use node.key_file")
            raise _err(f"node.{k}", "unknown field")

    cons = _get(raw, "consortium", "", dict, default={})
    scheme = _get(cons, "scheme", "consortium.", str, default="additive",
                  check=lambda v: None if v in SCHEMES else f"must be one of {SCHEMES}, got {v!r}")
    threshold = _get(cons, "threshold", "consortium.", int, default=None)
    if threshold is not None and scheme != "shamir":
        raise _err("consortium.threshold", "applies to scheme = 'shamir' only")
    transport = _get(cons, "transport", "consortium.", str, default="tcp",
                     check=lambda v: None if v in TRANSPORTS else f"must be one of {TRANSPORTS}")
    bhost, bport = _parse_broker(_get(cons, "broker", "consortium.", str,
                                      default="mqtt://127.0.0.1:1883"))
    default_prep = "dn07" if scheme == "shamir" else "ot"
    prep = _get(cons, "preprocessing", "consortium.", str, default=default_prep,
                check=lambda v: None if v in PREPROCESSING else f"must be one of {PREPROCESSING}")
    if prep == "dn07" and scheme != "shamir":
        raise _err("consortium.preprocessing", "'dn07' needs scheme = 'shamir'")
    if prep == "ot" and scheme != "additive":
        raise _err("consortium.preprocessing", "'ot' needs scheme = 'additive'")
    if prep == "rss3" and scheme != "additive":
        raise _err("consortium.preprocessing", "'rss3' needs scheme = 'additive'")
    if prep == "dealer" and scheme != "additive":
        raise _err("consortium.preprocessing", "'dealer' supplies additive shares only")
    cid = _get(cons, "id", "consortium.", str, default="smpc")
    security = _parse_security(cons, scheme, threshold)
    cipher = _parse_cipher(cons, transport)

    tmo = _get(raw, "timeouts", "", dict, default={})
    connect = _get(tmo, "connect", "timeouts.", float, default=30.0, check=_positive)
    receive = _get(tmo, "receive", "timeouts.", float, default=60.0, check=_positive)
    job = _get(tmo, "job", "timeouts.", float, default=600.0, check=_positive)

    peers_raw = _get(raw, "peers", "", list)
    if not peers_raw:
        raise _err("peers", "need at least one peer")
    peers = []
    for i, p in enumerate(peers_raw):
        pre = f"peers[{i}]."
        if not isinstance(p, dict):
            raise _err(f"peers[{i}]", "must be a table")
        pidx = _get(p, "index", pre, int)
        pname = _get(p, "name", pre, str, check=lambda v: None if v else "must not be empty")
        ph, pp = parse_address(_get(p, "address", pre, str), pre + "address")
        try:
            pk = parse_public_key(_get(p, "public_key", pre, str))
        except SmpcError as e:
            raise _err(pre + "public_key", str(e)) from None
        peers.append(Peer(pidx, pname, ph, pp, pk))
    n = len(peers) + 1
    indices = sorted([index] + [p.index for p in peers])
    if indices != list(range(n)):
        bad = "node.index" if index >= n else next(
            f"peers[{i}].index" for i, p in enumerate(peers)
            if p.index >= n or [index, *(q.index for q in peers)].count(p.index) > 1)
        raise _err(bad, f"party indices must be 0..{n - 1}, each once; got {indices}")
    if prep == "rss3" and n != 3:
        raise _err("consortium.preprocessing", f"'rss3' needs exactly 3 parties (honest majority), got {n}")
    names = [name] + [p.name for p in peers]
    if len(set(names)) != n:
        raise _err("peers", f"party names must be distinct, got {names}")
    if ANALYST in names:
        raise _err("peers", f"{ANALYST!r} is reserved for the analyst recipient")
    if len({p.public_key for p in peers}) != len(peers):
        raise _err("peers", "two peers share a public key")

    sources = {}
    for sname, s in _get(raw, "sources", "", dict, default={}).items():
        pre = f"sources.{sname}."
        if not isinstance(s, dict):
            raise _err(f"sources.{sname}", "must be a table")
        kind = _get(s, "kind", pre, str,
                    check=lambda v: None if v in SOURCE_KINDS else f"must be one of {SOURCE_KINDS}")
        spath = s.get("path")
        query = _get(s, "query", pre, str, default=None)
        dsn = _get(s, "dsn", pre, str, default=None)
        if kind in ("csv", "parquet", "sqlite"):
            spath = _rel(base, _get(s, "path", pre, str))
        if kind in ("sqlite", "postgres") and query is None:
            raise _err(pre + "query", "missing (a SELECT naming the table; the job picks columns)")
        if kind == "postgres":
            if dsn is None:
                raise _err(pre + "dsn", "missing")
            if "password" in dsn.lower() or "@" in dsn:
                raise _err(pre + "dsn", "no passwords in the config; use PGPASSFILE or the "
                           "environment")
        if query is not None and not query.lstrip().lower().startswith(("select", "with")):
            raise _err(pre + "query", "must be a SELECT query")
        unknown = sorted(set(s) - {"kind", "path", "query", "dsn", "columns"})
        if unknown:
            raise _err(pre + unknown[0], "unknown field")
        cols = parse_columns(_get(s, "columns", pre, dict, default=None), pre + "columns.")
        sources[sname] = SourceConfig(sname, kind, spath, query, dsn, cols)

    pol = _get(raw, "policy", "", dict, default={})
    from mpc.node.manifest import parse_verify_key

    keys = []
    for i, k in enumerate(_get(pol, "analyst_keys", "policy.", list, default=[])):
        try:
            keys.append(parse_verify_key(k))
        except SmpcError as e:
            raise _err(f"policy.analyst_keys[{i}]", str(e)) from None
    comps = _get(pol, "allowed_computations", "policy.", list, default=[])
    recips = _get(pol, "allowed_recipients", "policy.", list, default=[ANALYST])
    for fname, lst in (("allowed_computations", comps), ("allowed_recipients", recips)):
        if not all(isinstance(x, str) for x in lst):
            raise _err(f"policy.{fname}", "must be a list of strings")
    for r in recips:
        if r != ANALYST and r not in names:
            raise _err("policy.allowed_recipients", f"{r!r} is neither 'analyst' nor a party name")
    models = _get(pol, "approved_models", "policy.", list, default=[])
    if not all(isinstance(h, str) and len(h) == 64 and all(c in "0123456789abcdef" for c in h)
               for h in models):
        raise _err("policy.approved_models", "must be a list of 64-hex-digit model hashes")
    mfile = _get(pol, "approved_models_file", "policy.", str, default=None)
    policy = PolicyConfig(
        allowed_computations=tuple(comps), allowed_recipients=tuple(recips),
        analyst_keys=tuple(keys),
        min_group_size=_get(pol, "min_group_size", "policy.", int, default=1, check=_positive),
        max_rows=_get(pol, "max_rows", "policy.", int, default=10_000_000, check=_positive),
        approved_models=tuple(models),
        approved_models_file=_rel(base, mfile) if mfile else None,
        allow_reveal_scores=_get(pol, "allow_reveal_scores", "policy.", bool, default=False),
        dp=parse_dp(_get(pol, "dp", "policy.", dict, default=None)),
        allow_stored_models=_get(pol, "allow_stored_models", "policy.", bool, default=True),
        approved_thresholds=tuple(float(x) for x in _get(
            pol, "approved_thresholds", "policy.", list, default=[0.5],
            check=lambda v: None if all(isinstance(x, int | float) and not isinstance(x, bool)
                                        for x in v) else "must be a list of numbers")),
    )
    unknown = sorted(set(pol) - {"allowed_computations", "allowed_recipients", "analyst_keys",
                                 "min_group_size", "max_rows", "approved_models",
                                 "approved_models_file", "allow_reveal_scores", "dp",
                                 "allow_stored_models", "approved_thresholds"})
    if unknown:
        raise _err("policy." + unknown[0], "unknown field")

    ins = _get(raw, "insecure", "", dict, default={})
    plaintext = _get(ins, "plaintext_channels", "insecure.", bool, default=False)
    allow_dealer = _get(ins, "allow_dealer_node", "insecure.", bool, default=False)
    unknown = sorted(set(ins) - {"plaintext_channels", "allow_dealer_node"})
    if unknown:
        raise _err("insecure." + unknown[0], "unknown field")
    if plaintext and transport == "mqtt":
        raise _err("insecure.plaintext_channels", "not available over mqtt in the daemon")

    api = _parse_api(_get(raw, "api", "", dict, default={}), base, policy.analyst_keys)
    if not is_loopback(api_host) and api.tls_cert is None:
        raise _err("node.api", f"{api_host!r} is not a loopback address; the API listens beyond "
                   "loopback only with TLS (api.tls_cert and api.tls_key)")

    cfg = NodeConfig(
        path=path, name=name, index=index, key_file=key_file, host=host, port=port,
        api_host=api_host, api_port=api_port, state_dir=state_dir, consortium_id=cid,
        broker_username=broker_user,
        broker_password_file=_rel(base, broker_pw) if broker_pw is not None else None,
        scheme=scheme, threshold=threshold, transport=transport, broker_host=bhost,
        broker_port=bport, preprocessing=prep, peers=tuple(sorted(peers, key=lambda p: p.index)),
        sources=sources, policy=policy, connect_timeout=connect, receive_timeout=receive,
        job_timeout=job, plaintext_channels=plaintext, allow_dealer_node=allow_dealer,
        api=api, security=security, cipher=cipher,
        precompute=_parse_precompute(_get(raw, "preprocessing", "", dict, default={}), policy),
    )
    if security == "malicious" and scheme == "additive":
        _check_spdz2k(prep, cfg.precompute)
    elif security == "malicious" and (cfg.t is None or cfg.n != 2 * cfg.t + 1):
        raise _err("consortium.security", f"'malicious' needs n = 2t + 1 parties (n = {cfg.n}, "
                   f"t = {cfg.t}): an even n or a lower threshold has no protocol yet")
    return cfg


def _parse_precompute(t: dict, policy: PolicyConfig) -> PrecomputeConfig:
    """[preprocessing] (issue 15): target per computation (0..MAX_TARGET batches, only
    computations this node's policy allows), idle_after (seconds, > 0), max_shapes
    (1..MAX_SHAPES). Unknown fields are refused."""
    from mpc.node.computations import COMPUTATIONS

    unknown = sorted(set(t) - {"target", "idle_after", "max_shapes"})
    if unknown:
        raise _err("preprocessing." + unknown[0], "unknown field")
    raw = _get(t, "target", "preprocessing.", dict, default={})
    target = {}
    for comp, v in raw.items():
        name = f"preprocessing.target.{comp}"
        if comp not in COMPUTATIONS:
            raise _err(name, f"unknown computation (known: {list(COMPUTATIONS)})")
        if comp not in policy.allowed_computations:
            raise _err(name, "not in policy.allowed_computations: this node never runs it")
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_TARGET:
            raise _err(name, f"must be an integer 0..{MAX_TARGET} (batches to keep), got {v!r}")
        target[comp] = v
    idle = _get(t, "idle_after", "preprocessing.", float, default=10.0,
                check=lambda v: None if 0 < v <= 86400 else "must be in (0, 86400] seconds")
    shapes = _get(t, "max_shapes", "preprocessing.", int, default=4,
                  check=lambda v: None if 1 <= v <= MAX_SHAPES else f"must be 1..{MAX_SHAPES}")
    return PrecomputeConfig(target=target, idle_after=idle, max_shapes=shapes)


def _parse_cipher(cons: dict, transport: str) -> str:
    """consortium.cipher: the Noise cipher of the peer links, "ChaChaPoly" (default) or "AESGCM"
    (TCP only: the MQTT link keeps ChaChaPoly)."""
    from network.secure import CIPHERS, DEFAULT_CIPHER

    cipher = _get(cons, "cipher", "consortium.", str, default=DEFAULT_CIPHER,
                  check=lambda v: None if v in CIPHERS else f"must be one of {CIPHERS}, got {v!r}")
    if cipher != DEFAULT_CIPHER and transport != "tcp":
        raise _err("consortium.cipher", f"{cipher!r} is available on transport = 'tcp' only (the "
                   f"MQTT link runs {DEFAULT_CIPHER})")
    return cipher


def _parse_security(cons: dict, scheme: str, threshold: int | None) -> str:
    """consortium.security: "semi-honest" (default) or "malicious": Shamir (parse_config
    checks n = 2t + 1 once the peers are known; Chida et al. 2018) or additive (SPDZ2k over
    Z_2^64, any n >= 2, dishonest majority; parse_config checks the source, _check_spdz2k)."""
    from protocols.session import SECURITY

    security = _get(cons, "security", "consortium.", str, default="semi-honest",
                    check=lambda v: None if v in SECURITY else f"must be one of {SECURITY}, got {v!r}")
    return security


#: preprocessing sources of a malicious additive (SPDZ2k) consortium: ot (dealer-free MACed
#: items, protocols.malicious.spdz2k_ot) or the shared-seed dealer (insecure; --insecure only)
SPDZ2K_PREPROCESSING = ("ot", "shared_seed_dealer")


def _check_spdz2k(prep: str, precompute: PrecomputeConfig) -> None:
    """security = "malicious" with scheme = "additive" (SPDZ2k, dishonest majority, any
    n >= 2): MACed preprocessing from `ot` (or the insecure shared-seed dealer, which
    insecure_options reports); `dealer` and `rss3` supply no MACed items (refused as
    run_local refuses them). Nothing is precomputed: SPDZ2k's items are MACed under the
    session's own key alpha (drawn per job, never stored), so a stored batch could not serve
    another job; a [preprocessing] target is refused rather than silently ignored."""
    if prep not in SPDZ2K_PREPROCESSING:
        raise _err("consortium.preprocessing", f"{prep!r} supplies no MACed items for "
                   "security = 'malicious' with scheme = 'additive' (SPDZ2k); use 'ot'")
    busy = sorted(c for c, v in precompute.target.items() if v)
    if busy:
        raise _err(f"preprocessing.target.{busy[0]}", "nothing is precomputed with security = "
                   "'malicious' and scheme = 'additive': SPDZ2k's items are MACed under a key "
                   "drawn per job")


def _parse_api(t: dict, base: Path, analysts: tuple[bytes, ...] = ()) -> ApiConfig:
    from mpc.node.manifest import parse_verify_key

    keys = []
    for i, k in enumerate(_get(t, "operator_keys", "api.", list, default=[])):
        try:
            keys.append(parse_verify_key(k))
        except SmpcError as e:
            raise _err(f"api.operator_keys[{i}]", str(e)) from None
    hosts = _get(t, "allowed_hosts", "api.", list, default=[])
    if not all(isinstance(h, str) and h for h in hosts):
        raise _err("api.allowed_hosts", "must be a list of host[:port] names")
    cert = _get(t, "tls_cert", "api.", str, default=None)
    key = _get(t, "tls_key", "api.", str, default=None)
    if (cert is None) != (key is None):
        raise _err("api.tls_cert" if cert is None else "api.tls_key",
                   "tls_cert and tls_key go together")
    unknown = sorted(set(t) - {"operator_keys", "allowed_hosts", "max_queue", "rate", "burst",
                               "max_skew", "tls_cert", "tls_key", "client_certs",
                               "max_queued_per_analyst"})
    if unknown:
        raise _err("api." + unknown[0], "unknown field")
    from mpc.node.tlspin import parse_client_certs

    pins = parse_client_certs(_get(t, "client_certs", "api.", list, default=[]), base,
                               set(analysts) | set(keys))
    if pins and cert is None:
        raise _err("api.client_certs", "needs api.tls_cert and api.tls_key (client "
                   "certificates are checked in the TLS handshake)")
    return ApiConfig(client_certs=pins,
        operator_keys=tuple(keys), allowed_hosts=tuple(hosts),
        max_queue=_get(t, "max_queue", "api.", int, default=64, check=_positive),
        max_queued_per_analyst=_get(t, "max_queued_per_analyst", "api.", int, default=None,
                                    check=_positive),
        rate=_get(t, "rate", "api.", float, default=20.0, check=_positive),
        burst=_get(t, "burst", "api.", int, default=50, check=_positive),
        max_skew=_get(t, "max_skew", "api.", float, default=60.0, check=_positive),
        tls_cert=_rel(base, cert) if cert else None, tls_key=_rel(base, key) if key else None)


