"""A node's policy: may this signed manifest run here?

Checked by every node on its own, before any data is read: the analyst's key is allowed, the
computation is allowed and registered, every recipient is allowed, every named party exists,
this node's own data source exists, and the consortium matches. Row limits and the minimum
group size are checked again when the data is loaded (`check_rows`), because only then does
the node know its row count. A refusal is a `PolicyError` with a short machine-readable code
(`policy.analyst`, `policy.computation`, ...) and a sentence for humans.

What the data owner controls (issue 13), each checked here on every node for its own data:

* columns: a source with a `columns` table lets the job read only the columns named there,
  each only by its listed computations (`policy.column`); `aggregate_only` columns never feed
  a per-row output (`policy.reveal_scores`); `bounds` clip values under MPC before an
  aggregate and fix the sensitivity of its DP noise (`policy.bounds` if DP needs them).
* scoring models: fraud_score / fraud_aggregate with public coefficients run only if
  `model_hash(coef, intercept, threshold, proba)` is in policy.approved_models (or the
  approved_models_file): an analyst cannot choose coefficients or thresholds per job
  (`policy.model`). Per-row scores only with policy.allow_reveal_scores on every node.
* differential privacy ([policy.dp]): the job's epsilon may not exceed the node's
  (`policy.epsilon`), and the spend must fit the (analyst, source) budget of the ledger
  (mpc.node.budget, `policy.budget`). The agreed noise uses the smallest epsilon of all
  nodes (`agree_dp`). Training jobs (ML_COMPUTATIONS) get noise on their coefficients when
  the manifest asks (parameters.epsilon) or a node's [policy.dp] models = "required"; their
  feature columns then need bounds (protocols.apps.ml.private); a node without [policy.dp]
  refuses a training job that asks for epsilon (it could not account for it).

The reasons sent to peers and the analyst are generic sentences; the specific column or
model stays in this node's log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from typing import Any

from mpc.node import codes
from mpc.node.config import ANALYST, NodeConfig
from mpc.node.manifest import Manifest
from network.errors import SmpcError

log = logging.getLogger("smpc.node.policy")

#: computations whose outputs are aggregates released with DP noise when [policy.dp] is set
DP_COMPUTATIONS = ("aggregate_sum", "aggregate_mean", "fraud_aggregate")
#: training jobs whose released or stored coefficients can carry DP noise (issue 13)
ML_COMPUTATIONS = ("linear_regression", "ridge_regression", "logistic_regression")
FRAUD = ("fraud_score", "fraud_aggregate")


class PolicyError(SmpcError):
    """This node's policy refuses the job. `code` names the rule."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def model_hash(coef, intercept, threshold, proba: bool = True) -> str:
    """The hash a privacy officer approves: BLAKE2b-256 of the canonical JSON of the public
    scoring model and its threshold (floats as the manifest spells them)."""
    body = {"coef": [float(c) for c in coef], "intercept": float(intercept),
            "threshold": float(threshold), "proba": bool(proba)}
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.blake2b(raw, digest_size=32, person=b"smpc-model").hexdigest()


def approved_models(cfg: NodeConfig) -> set[str]:
    out = set(cfg.policy.approved_models)
    f = cfg.policy.approved_models_file
    if f is not None:
        try:
            out |= {ln.strip() for ln in f.read_text().splitlines()
                    if ln.strip() and not ln.startswith("#")}
        except OSError as e:
            log.warning("policy.approved_models_file %s unreadable: %s", f, e.strerror)
    return out


def _refuse(code: str, public: str, detail: str) -> PolicyError:
    log.warning("policy refusal %s: %s", code, detail)  # the specifics stay in this log
    return PolicyError(code, public)


def used_columns(m: Manifest, party: str, registry: dict) -> list[str]:
    inp = m.inputs.get(party)
    if inp is None:
        return []
    cols = list(inp.get("columns", [])) + ([inp["label"]] if "label" in inp else [])
    return cols + [c for c in registry[m.computation].extras(m, party) if c not in cols]


def check_columns(m: Manifest, cfg: NodeConfig, registry: dict) -> None:
    """This node's columns: listed in the source's columns table, for this computation."""
    inp = m.inputs.get(cfg.name)
    if inp is None or inp["source"] not in cfg.sources:
        return
    table = cfg.sources[inp["source"]].columns
    if table is None:
        return
    for c in used_columns(m, cfg.name, registry):
        cp = table.get(c)
        if cp is None or (cp.computations is not None and m.computation not in cp.computations):
            raise _refuse(codes.POLICY_COLUMN, f"a requested column is not allowed for "
                          f"{m.computation} by {cfg.name}'s policy",
                          f"column {c!r} of source {inp['source']!r} for {m.computation}")


def check_model(m: Manifest, cfg: NodeConfig) -> None:
    """Fraud jobs: an approved model and threshold; per-row scores only where allowed."""
    if m.computation not in FRAUD:
        return
    p = m.parameters
    if "model" in p:  # a stored shared model: trained here under this policy, never seen
        from mpc.node.models import ModelStore, ModelStoreError

        try:
            present = ModelStore(cfg.state_dir / "models").exists(p["model"])
        except ModelStoreError:
            present = False
        if not cfg.policy.allow_stored_models or not present:
            raise _refuse(codes.POLICY_MODEL, f"the stored model is not available at {cfg.name}",
                          f"stored model {p['model']!r}: allowed="
                          f"{cfg.policy.allow_stored_models} present={present}")
        t = float(p.get("threshold", 0.5))
        if t not in cfg.policy.approved_thresholds:
            raise _refuse(codes.POLICY_THRESHOLD, f"the threshold is not approved by {cfg.name}'s "
                          "policy", f"threshold {t} not in approved_thresholds")
    if "coef" in p:
        h = model_hash(p["coef"], p.get("intercept", 0.0), p.get("threshold", 0.5),
                       p.get("proba", True))
        if h not in approved_models(cfg):
            raise _refuse(codes.POLICY_MODEL, f"the scoring model is not approved by {cfg.name}'s "
                          "policy", f"model hash {h} not in approved_models")
    if p.get("reveal_scores"):
        if not cfg.policy.allow_reveal_scores:
            raise _refuse(codes.POLICY_REVEAL_SCORES, f"{cfg.name}'s policy releases flags only",
                          "reveal_scores with allow_reveal_scores = false")
        inp = m.inputs.get(cfg.name)
        table = cfg.sources[inp["source"]].columns if inp and inp["source"] in cfg.sources \
            else None
        for c in (inp or {}).get("columns", []):
            if table is not None and c in table and table[c].aggregate_only:
                raise _refuse(codes.POLICY_REVEAL_SCORES, f"{cfg.name}'s policy allows some "
                              "requested columns in aggregates only",
                              f"column {c!r} is aggregate_only")


def dp_request(m: Manifest, cfg: NodeConfig) -> dict[str, Any] | None:
    """This node's DP terms for the job (None: no DP here): what it sends at agreement."""
    dp = cfg.policy.dp
    if m.computation in ML_COMPUTATIONS:
        if dp is None and "epsilon" in m.parameters:
            raise _refuse(codes.POLICY_EPSILON, f"{cfg.name} has no DP policy to account for "
                          "parameters.epsilon", "epsilon asked, no [policy.dp]")
        if dp is None or (dp.models != "required" and "epsilon" not in m.parameters):
            return None
    elif dp is None or m.computation not in DP_COMPUTATIONS:
        return None
    eps = m.parameters.get("epsilon", dp.epsilon)
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 < eps <= dp.epsilon:
        raise _refuse(codes.POLICY_EPSILON, f"parameters.epsilon must be in (0, {dp.epsilon:g}] "
                      f"at {cfg.name}", f"epsilon {eps!r}")
    req: dict[str, Any] = {"epsilon": float(eps), "delta": dp.delta, "mechanism": dp.mechanism}
    inp = m.inputs.get(cfg.name)
    if m.computation in ("aggregate_sum", "aggregate_mean", *ML_COMPUTATIONS) and inp is not None:
        table = cfg.sources[inp["source"]].columns if inp["source"] in cfg.sources else None
        bounds = []
        for c in inp.get("columns", []):
            b = table[c].bounds if table is not None and c in table else None
            if b is None:
                raise _refuse(codes.POLICY_BOUNDS, f"{cfg.name}'s policy states no bounds for a "
                              "requested column (needed for DP sums and DP training)",
                              f"column {c!r}")
            bounds.append(list(b))
        req["bounds"] = bounds
    return req


def agree_dp(views: dict[int, dict]) -> dict[str, Any] | None:
    """The DP terms every node uses (same on every node): the smallest epsilon of the nodes
    that ask for DP; the Gaussian only if all of them allow it; every party's bounds."""
    reqs = {j: v.get("dp") for j, v in sorted(views.items()) if isinstance(v.get("dp"), dict)}
    if not reqs:
        return None
    for j, r in reqs.items():  # a peer's terms as sent: validated before any use
        _check_terms(j, r)
    gauss = all(r.get("mechanism") == "gaussian" for r in reqs.values())
    return {"epsilon": min(float(r["epsilon"]) for r in reqs.values()),
            "delta": min(float(r["delta"]) for r in reqs.values()) if gauss else 0.0,
            "mechanism": "gaussian" if gauss else "laplace",
            "bounds": {j: r["bounds"] for j, r in reqs.items() if "bounds" in r}}


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _check_terms(j: int, r: dict) -> None:
    """PolicyError(agreement.malformed) unless party j's DP terms are well formed: epsilon
    finite > 0, delta finite in [0, 1), a known mechanism, bounds [[lo, hi], ...] finite
    with lo <= hi (a NaN epsilon first in party order would win min() and spend nothing)."""
    b = r.get("bounds", [])
    ok = (_num(r.get("epsilon")) and r["epsilon"] > 0 and _num(r.get("delta"))
          and 0 <= r["delta"] < 1 and r.get("mechanism") in ("laplace", "gaussian")
          and isinstance(b, list)
          and all(isinstance(p, list) and len(p) == 2 and all(_num(x) for x in p)
                  and p[0] <= p[1] for p in b))
    if not ok:
        raise _refuse(codes.AGREEMENT_MALFORMED, "a party sent malformed DP terms",
                      f"party {j}: dp terms {str(r)[:200]!r}")


def job_cost(terms: dict[str, Any]):
    """What the job spends per (analyst, source): its epsilon, delta and zCDP rho."""
    from mpc.node.budget import Cost
    from protocols.apps.dp import calibrate

    n = calibrate(terms["mechanism"], terms["epsilon"], terms["delta"], 1.0)
    return Cost(n.epsilon, n.delta, n.rho)


def check_budget(m: Manifest, cfg: NodeConfig, ledger, req: dict | None) -> None:
    if ledger is None or req is None or cfg.name not in m.inputs:
        return
    from mpc.node.budget import BudgetExceeded

    dp = cfg.policy.dp
    try:
        ledger.check(m.analyst_key.hex(), m.inputs[cfg.name]["source"], job_cost(req),
                     dp.budget_epsilon, dp.budget_delta, job_id=m.job_id)
    except BudgetExceeded as e:
        raise PolicyError(e.code, str(e)) from None


def spend_budget(m: Manifest, cfg: NodeConfig, ledger, terms: dict | None) -> None:
    """After every node agreed, before any data is read: charge this run the agreed spend
    on this node's ledger. Every run spends (a re-submitted job draws fresh noise, and its
    failed attempt may have released its output: mpc.node.budget); a run that does not fit
    raises PolicyError(policy.budget) and spends nothing. The audit log gets the spend
    through the job's audit entry reason."""
    if ledger is None or terms is None or cfg.name not in m.inputs:
        return
    from mpc.node.budget import BudgetExceeded

    c = job_cost(terms)
    dp = cfg.policy.dp  # None: DP asked by a peer only; recorded here without a limit
    limit = (math.inf, math.inf) if dp is None else (dp.budget_epsilon, dp.budget_delta)
    source = m.inputs[cfg.name]["source"]
    try:
        run = ledger.charge(m.job_id, m.analyst_key.hex(), source, c, *limit)
    except BudgetExceeded as e:
        raise _refuse(e.code, str(e), f"job {m.job_id}: a further run would exceed the "
                      "budget") from None
    log.info("job %s: privacy budget spent (run %d): epsilon=%g delta=%g rho=%g (analyst "
             "%s…, source %s)", m.job_id, run, c.epsilon, c.delta, c.rho,
             m.analyst_key.hex()[:12], source)


def check_manifest(m: Manifest, cfg: NodeConfig, registry: dict, ledger=None) -> None:
    """Raise PolicyError if this node's policy refuses the manifest (ledger: this node's
    BudgetLedger, for the privacy budget)."""
    pol = cfg.policy
    if m.analyst_key not in pol.analyst_keys:
        raise PolicyError(codes.POLICY_ANALYST, f"analyst key ed25519:{m.analyst_key.hex()[:16]}... "
                          "is not in policy.analyst_keys")
    cons = m.body.get("consortium")
    if cons is not None and cons != cfg.consortium_id:
        raise PolicyError(codes.POLICY_CONSORTIUM, f"manifest is for consortium {cons!r}, this node "
                          f"belongs to {cfg.consortium_id!r}")
    if m.computation not in registry:
        raise PolicyError(codes.POLICY_UNKNOWN_COMPUTATION,
                          f"computation {m.computation!r} is not in the registry "
                          f"({sorted(registry)})")
    if m.computation not in pol.allowed_computations:
        raise PolicyError(codes.POLICY_COMPUTATION,
                          f"computation {m.computation!r} is not in policy.allowed_computations")
    names = cfg.party_names()
    for r in m.recipients:
        if r != ANALYST and r not in names:
            raise PolicyError(codes.POLICY_RECIPIENT, f"recipient {r!r} is not a party or 'analyst'")
        if r not in pol.allowed_recipients:
            raise PolicyError(codes.POLICY_RECIPIENT,
                              f"recipient {r!r} is not in policy.allowed_recipients")
    for party in m.inputs:
        if party not in names:
            raise PolicyError(codes.POLICY_PARTY, f"manifest.inputs names unknown party {party!r}")
    spec = registry[m.computation]
    from mpc.node.jobs import check_spdz2k  # issue 16: what SPDZ2k runs, before any input

    check_spdz2k(m, cfg)
    spec.check_parameters(m, cfg)
    mine = m.inputs.get(cfg.name)
    if mine is None and spec.every_party_inputs:
        raise PolicyError(codes.POLICY_INPUT, f"{m.computation} needs data from every party; "
                          f"manifest.inputs has none for {cfg.name!r}")
    if mine is not None and mine["source"] not in cfg.sources:
        raise PolicyError(codes.SOURCE_UNKNOWN, f"manifest.inputs.{cfg.name}.source "
                          f"{mine['source']!r} is not a data source of {cfg.name}")
    k_min = m.parameters.get("k_min")
    # a manifest may ask for a larger minimum than the policy, never a smaller one (the job
    # then uses the largest minimum of all nodes); a smaller one is refused, so the analyst
    # learns why instead of getting silently different suppression
    if k_min is not None and (
        isinstance(k_min, bool) or not isinstance(k_min, int) or k_min < pol.min_group_size
    ):
        raise PolicyError(codes.POLICY_MIN_GROUP_SIZE, f"parameters.k_min = {k_min!r} is below "
                          f"policy.min_group_size = {pol.min_group_size}")
    check_columns(m, cfg, registry)
    check_model(m, cfg)
    req = dp_request(m, cfg)
    check_spdz2k(m, cfg, req)
    if req is not None and m.computation in ML_COMPUTATIONS:
        check_dp_training(m)
    check_budget(m, cfg, ledger, req)


#: manifest parameters of a training job that the node consumes itself (not ml.train's)
_NODE_ML_PARAMS = ("partition", "id_column", "store_model", "epsilon", "residual_bound")


def check_dp_training(m: Manifest) -> None:
    """A DP training job's settings inside the sensitivity analysis (protocols.apps.ml.private
    .regime: solver, schedule, sigmoid, lr > 0, l2 >= 0, no weights or standardisation), checked
    at submission: refused then, it costs no budget (review2: they were checked only when the
    job ran, after every node had charged its epsilon). The data-dependent checks (step size
    against N, the fixed-point range) still run in the job."""
    from mpc.node.jobs import JobParameterError
    from protocols.apps.ml.private import regime
    from protocols.errors import ConfigError

    model = m.computation.split("_")[0]
    hp = {k: v for k, v in m.parameters.items() if k not in _NODE_ML_PARAMS}
    try:
        regime(model, hp)
    except (ConfigError, TypeError, ValueError, OverflowError) as e:
        raise JobParameterError(f"parameters: {e}") from None


def check_rows(rows: int, cfg: NodeConfig) -> None:
    """Row limits on this node's own data for one job."""
    if rows > cfg.policy.max_rows:
        raise PolicyError(codes.POLICY_MAX_ROWS, f"{rows} rows exceed policy.max_rows = "
                          f"{cfg.policy.max_rows}")
    if rows < cfg.policy.min_group_size:
        raise PolicyError(codes.POLICY_MIN_GROUP_SIZE, f"{rows} rows are fewer than "
                          f"policy.min_group_size = {cfg.policy.min_group_size}")
