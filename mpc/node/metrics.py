"""The node's counters, served as Prometheus text (exposition format 0.0.4) at GET /metrics:

    smpc_jobs_total{status="done|failed|refused"}   jobs ended since start
    smpc_job_rounds_total, smpc_job_bytes_sent_total  summed over ended jobs
    smpc_queue_length, smpc_job_running              now
    smpc_requests_rejected_total{code="..."}         API requests refused, by code (these
                                                     are not audited: a stranger cannot
                                                     grow the audit log)
    smpc_requests_total                              API requests served
    smpc_transport_records_rejected_total            records the job channels dropped before
                                                     authentication (forged, garbage or
                                                     transplanted publishes on the broker),
                                                     summed over ended jobs; a job's count
                                                     includes every channel it opened,
                                                     connect rounds that ended in a requeue
                                                     or a failure too (Run.dropped)
    smpc_transport_records_duplicate_total           replayed / duplicate records dropped, the
                                                     same way (network.mailbox link_stats)
    smpc_peer_connections_rejected_total             (TCP) peer connections dropped before
                                                     authentication: strangers, replays

Who may read it: clients on a loopback address without a signature (a scraper on the host),
anyone else only with a request signed by an operator key (api.operator_keys). It carries
counts only: no job ids, keys or data."""

from __future__ import annotations

from collections import Counter


class Metrics:
    def __init__(self):
        self.jobs: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.requests = 0
        self.rounds = 0
        self.bytes_sent = 0
        self.records_rejected = 0
        self.records_duplicate = 0

    def job_ended(self, status: str, stats: dict) -> None:
        self.jobs[status] += 1
        self.rounds += int(stats.get("rounds", 0) or 0)
        self.bytes_sent += int(stats.get("bytes_sent", 0) or 0)
        self.records_rejected += int(stats.get("rejected", 0) or 0)
        self.records_duplicate += int(stats.get("duplicates", 0) or 0)

    def reject(self, code: str) -> None:
        self.rejected[code] += 1

    def render(self, *, queue_length: int, running: int,
               peer_rejected: int | None = None) -> str:
        def esc(v: str) -> str:
            return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

        out = ["# HELP smpc_jobs_total Jobs ended since the node started, by status.",
               "# TYPE smpc_jobs_total counter"]
        for st in ("done", "failed", "refused"):
            out.append(f'smpc_jobs_total{{status="{st}"}} {self.jobs.get(st, 0)}')
        out += ["# HELP smpc_job_rounds_total Communication rounds of ended jobs.",
                "# TYPE smpc_job_rounds_total counter", f"smpc_job_rounds_total {self.rounds}",
                "# HELP smpc_job_bytes_sent_total Bytes this node sent in ended jobs.",
                "# TYPE smpc_job_bytes_sent_total counter",
                f"smpc_job_bytes_sent_total {self.bytes_sent}",
                "# HELP smpc_queue_length Jobs queued on this node.",
                "# TYPE smpc_queue_length gauge", f"smpc_queue_length {queue_length}",
                "# HELP smpc_job_running Jobs running on this node.",
                "# TYPE smpc_job_running gauge", f"smpc_job_running {running}",
                "# HELP smpc_transport_records_rejected_total Records the job channels dropped "
                "unauthenticated, summed over ended jobs.",
                "# TYPE smpc_transport_records_rejected_total counter",
                f"smpc_transport_records_rejected_total {self.records_rejected}",
                "# HELP smpc_transport_records_duplicate_total Duplicate or replayed records "
                "the job channels dropped, summed over ended jobs.",
                "# TYPE smpc_transport_records_duplicate_total counter",
                f"smpc_transport_records_duplicate_total {self.records_duplicate}",
                "# HELP smpc_requests_total API requests received.",
                "# TYPE smpc_requests_total counter", f"smpc_requests_total {self.requests}",
                "# HELP smpc_requests_rejected_total API requests refused, by code.",
                "# TYPE smpc_requests_rejected_total counter"]
        for code in sorted(self.rejected):
            out.append(f'smpc_requests_rejected_total{{code="{esc(code)}"}} '
                       f"{self.rejected[code]}")
        if peer_rejected is not None:
            out += ["# HELP smpc_peer_connections_rejected_total Peer connections dropped "
                    "before authentication (strangers, replays).",
                    "# TYPE smpc_peer_connections_rejected_total counter",
                    f"smpc_peer_connections_rejected_total {peer_rejected}"]
        return "\n".join(out) + "\n"
