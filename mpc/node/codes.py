"""Error codes a node reports, in one place: the `code` of a job record, of an HTTP error
body, of the audit log and of the errors that carry one (PolicyError, DataSourceError,
JobAbortError, JobUnavailableError, ...). They are a wire contract: clients and operators
match on them, so a code is never renamed, only added. Families:

  policy.*     this node's policy refuses the job (nothing computed)
  source.*     a data source cannot supply the requested columns
  manifest.*   the submission is malformed or not signed by a known analyst
  agreement.*  the nodes did not agree to run the same job on aligned data
  job.*        the job's own lifecycle; job.error.<ExceptionName> for an unexpected error
  input.*      a bank's input is not in its declared range or shape (malicious mode: caught
               under MPC, or refused by its honest owner, the owner named on every node)
  peer.*       another node vanished or failed authentication
  security.*   malicious mode: a check caught a deviation, or no malicious protocol exists
  node.*       this node stopped or restarted under the job
  audit.*      the audit log is missing, corrupted or lost a countersigned head
  transport.*  the message broker refused this node's credentials or stayed unreachable
  http.*       the HTTP API itself
  auth.*       a request's signature (mpc.node.reqauth): missing, stale, replayed, unknown key
  rate.*, queue.*  the API's limits (HTTP 429)
"""

from __future__ import annotations

# -- this node's policy (mpc.node.policy) ---------------------------------------------------
POLICY_ANALYST = "policy.analyst"
POLICY_CONSORTIUM = "policy.consortium"
POLICY_UNKNOWN_COMPUTATION = "policy.unknown_computation"
POLICY_COMPUTATION = "policy.computation"
POLICY_RECIPIENT = "policy.recipient"
POLICY_PARTY = "policy.party"
POLICY_INPUT = "policy.input"
POLICY_MIN_GROUP_SIZE = "policy.min_group_size"
POLICY_MAX_ROWS = "policy.max_rows"
# the owners' data policy and differential privacy (issue 13)
POLICY_COLUMN = "policy.column"
POLICY_MODEL = "policy.model"
POLICY_THRESHOLD = "policy.threshold"
POLICY_REVEAL_SCORES = "policy.reveal_scores"
POLICY_EPSILON = "policy.epsilon"
POLICY_BOUNDS = "policy.bounds"
POLICY_BUDGET = "policy.budget"

# -- data sources (mpc.node.datasources, mpc.node.jobs) -------------------------------------
SOURCE_UNKNOWN = "source.unknown"
SOURCE_COLUMNS = "source.columns"
SOURCE_EMPTY = "source.empty"
SOURCE_NONNUMERIC = "source.nonnumeric"
SOURCE_MISSING = "source.missing"
SOURCE_UNAVAILABLE = "source.unavailable"
SOURCE_GROUPS = "source.groups"

# -- submissions ---------------------------------------------------------------------------
MANIFEST_SIGNATURE = "manifest.signature"
MANIFEST_MALFORMED = "manifest.malformed"
IDEMPOTENCY_CONFLICT = "idempotency.conflict"
MANIFEST_EXPIRED = "manifest.expired"
MANIFEST_LIFETIME = "manifest.lifetime"

# -- agreement between the nodes ------------------------------------------------------------
AGREEMENT_MALFORMED = "agreement.malformed"
AGREEMENT_CONSORTIUM_MISMATCH = "agreement.consortium_mismatch"
AGREEMENT_MANIFEST_MISMATCH = "agreement.manifest_mismatch"
#: the nodes' consortium.security settings differ (semi-honest / malicious): nothing runs
AGREEMENT_SECURITY_MISMATCH = "agreement.security_mismatch"
#: prefixes: a peer's refusal is reported as f"{prefix}:{the peer's code}"
AGREEMENT_REFUSED = "agreement.refused"
AGREEMENT_DATA = "agreement.data"
AGREEMENT_ALIGNMENT = "agreement.alignment"
#: the nodes derived different public terms (k, DP) from the agreement views: a node sent
#: different views to different peers (mpc.node.jobs.agree_terms, semi-honest sessions)
AGREEMENT_TERMS_MISMATCH = "agreement.terms_mismatch"

# -- the job ---------------------------------------------------------------------------------
JOB_UNKNOWN = "job.unknown"
JOB_UNAVAILABLE = "job.unavailable"
JOB_PARAMETERS = "job.parameters"
JOB_TIMEOUT = "job.timeout"
#: prefix of an unexpected error: "job.error." + the exception's class name
JOB_ERROR_PREFIX = "job.error."
DELIVER_SEAL = "deliver.seal"
#: a stored shared model is missing or malformed, or its name is taken (mpc.node.models)
MODEL_STORE = "model.store"
#: issue 16: a malicious-security job named a model stored by a semi-honest job
MODEL_SECURITY = "model.security"
#: a group input is not one-hot (protocols.apps.fraud.check_onehot, checked under MPC)
INPUT_ONEHOT = "input.onehot"
#: a bank's input failed its range check under MPC (protocols.apps.fraud_malicious, issue 16),
#: or an honest owner refused its own out-of-range input and told every party
#: (protocols.errors.InputRangeRefusedError, naming the owner)
INPUT_RANGE = "input.range"
JOB_WITHDRAWN = "job.withdrawn"
JOB_NOT_QUEUED = "job.not_queued"
JOB_NOT_DONE = "job.not_done"

# -- peers and this node ----------------------------------------------------------------------
PEER_UNAVAILABLE = "peer.unavailable"
PEER_AUTH = "peer.auth"
NODE_SHUTDOWN = "node.shutdown"
NODE_RESTARTED = "node.restarted"
#: the MQTT broker refused this node's account (node.broker_username / broker_password_file)
TRANSPORT_BROKER_REFUSED = "transport.broker_refused"
#: the MQTT broker could not be reached within the deadline
TRANSPORT_BROKER_UNAVAILABLE = "transport.broker_unavailable"

# -- malicious security (the `code` of protocols.errors' CheatingDetectedError and
# MaliciousUnsupportedError, which error_code reads) ------------------------------------------
SECURITY_CHEATING_DETECTED = "security.cheating_detected"
SECURITY_UNSUPPORTED = "security.unsupported"

# -- the audit log (mpc.node.audit, mpc.node.anchor) ------------------------------------------
AUDIT_LOG = "audit.log"
AUDIT_MISSING = "audit.missing"
AUDIT_ANCHOR = "audit.anchor"

# -- the HTTP API -------------------------------------------------------------------------------
HTTP_BAD_REQUEST = "http.bad_request"
HTTP_NOT_FOUND = "http.not_found"
HTTP_INTERNAL = "http.internal"
#: the client's code for a node it could not reach or that answered with an HTTP error
HTTP_ERROR = "http.error"
HTTP_HOST = "http.host"
HTTP_ORIGIN = "http.origin"
HTTP_CONTENT_TYPE = "http.content_type"
HTTP_TOO_LARGE = "http.too_large"
RATE_LIMITED = "rate.limited"
QUEUE_FULL = "queue.full"
#: issue 14: one analyst key holds its whole share of the queue (api.max_queued_per_analyst)
QUEUE_ANALYST = "queue.analyst"

# -- signed requests (mpc.node.reqauth) ---------------------------------------------------------
AUTH_MISSING = "auth.missing"
AUTH_MALFORMED = "auth.malformed"
AUTH_UNKNOWN_KEY = "auth.unknown_key"
AUTH_SKEW = "auth.skew"
AUTH_SIGNATURE = "auth.signature"
AUTH_REPLAY = "auth.replay"
AUTH_BUSY = "auth.busy"
AUTH_MISMATCH = "auth.mismatch"
AUTH_FORBIDDEN = "auth.forbidden"
#: issue 14: a request signed for another node (replayed from one node to the next) / signed
#: without naming the node at all (the smpc-request-v1 format)
AUTH_NODE = "auth.node"
AUTH_UNBOUND = "auth.unbound"
#: mutual TLS (mpc.node.tlspin): the client certificate is not pinned / the request is signed
#: by another key than the pinned certificate's owner
AUTH_CLIENT_CERT = "auth.client_cert"
AUTH_CERT_OWNER = "auth.cert_owner"

#: codes (or prefixes) of jobs recorded as "refused" (nothing was computed), not "failed"
REFUSED = ("agreement.", "policy.", SOURCE_UNKNOWN, JOB_UNAVAILABLE, JOB_PARAMETERS,
           MANIFEST_EXPIRED, JOB_WITHDRAWN)


def job_error(e: BaseException) -> str:
    """The code of an unexpected error: job.error.<class name>."""
    return JOB_ERROR_PREFIX + type(e).__name__


#: what the analyst and the peers are told for a code (details stay in the local log)
GENERIC = (
    ("policy.", "this node's policy refuses the job"),
    ("source.", "this node's data does not meet the job's rules"),
    (JOB_PARAMETERS, "the job's parameters are not acceptable"),
    (JOB_TIMEOUT, "the job exceeded its time limit"),
    ("peer.", "a peer was unavailable or could not be authenticated"),
    ("manifest.", "the manifest is not acceptable"),
    ("node.", "the node stopped or restarted"),
    ("transport.", "a node could not use the message broker"),
    ("deliver.", "the output could not be delivered"),
    (SECURITY_CHEATING_DETECTED, "a malicious-security check failed: a party deviated from the "
                                 "protocol; nothing was released"),
)


def generic_reason(code: str) -> str:
    for prefix, text in GENERIC:
        if code.startswith(prefix):
            return text
    return "the job failed"


#: every fixed code (prefixes excluded)
ALL = frozenset(v for k, v in globals().items() if k.isupper() and isinstance(v, str) and k not in (
    "JOB_ERROR_PREFIX",))
