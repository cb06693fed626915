"""The owners' policy fields of a node configuration (issue 13): per-column policy of a
source ([sources.<s>.columns.<c>]) and differential privacy ([policy.dp]). Parsed by
mpc.node.config (errors name the field, as every NodeConfigError); enforced by mpc.node.policy.
"""

from __future__ import annotations

from dataclasses import dataclass


def _get(*a, **kw):
    from mpc.node.config import _get as get

    return get(*a, **kw)


def _err(fieldname: str, msg: str):
    from mpc.node.config import _err as err

    return err(fieldname, msg)


def _positive(v):
    return None if v > 0 else f"must be > 0, got {v}"


@dataclass(frozen=True)
class ColumnPolicy:
    """What the data owner allows for one column of a source ([sources.<s>.columns.<c>]).

    computations: the computations that may read it (None: every allowed computation);
    aggregate_only: it may feed aggregates only, never a per-row output (fraud_score's
    scores); bounds: (lo, hi) public bounds every value is clipped to under MPC before an
    aggregate, which fix the sensitivity of the DP noise (None: no DP release of its sum)."""

    computations: tuple[str, ...] | None = None
    aggregate_only: bool = False
    bounds: tuple[float, float] | None = None


@dataclass(frozen=True)
class DPPolicy:
    """[policy.dp]: differential privacy of released aggregates (mpc.node.budget).

    epsilon / delta: what one job may spend per (analyst, source) (the manifest may ask for
    less); mechanism: "laplace" (pure epsilon) or "gaussian" (zCDP, delta > 0);
    budget_epsilon / budget_delta: the total per (analyst, source) over all jobs;
    models: "optional" (a training job's coefficients get DP noise when the manifest asks,
    parameters.epsilon) or "required" (every training job touching this node's data does,
    protocols.apps.ml.private: the columns need bounds)."""

    epsilon: float = 1.0
    delta: float = 0.0
    mechanism: str = "laplace"
    budget_epsilon: float = 10.0
    budget_delta: float = 1e-6
    models: str = "optional"


def parse_columns(raw: dict | None, pre: str) -> dict[str, ColumnPolicy] | None:
    if raw is None:
        return None
    out = {}
    for cname, c in raw.items():
        cp = f"{pre}{cname}."
        if not isinstance(c, dict):
            raise _err(pre + cname, "must be a table (computations, aggregate_only, bounds)")
        comps = _get(c, "computations", cp, list, default=None)
        if comps is not None and not all(isinstance(x, str) for x in comps):
            raise _err(cp + "computations", "must be a list of computation names")
        bounds = _get(c, "bounds", cp, list, default=None)
        if bounds is not None:
            if (len(bounds) != 2 or not all(isinstance(b, int | float) and not isinstance(b, bool)
                                            for b in bounds) or not bounds[0] <= bounds[1]):
                raise _err(cp + "bounds", "must be [lo, hi] with lo <= hi")
            bounds = (float(bounds[0]), float(bounds[1]))
        unknown = sorted(set(c) - {"computations", "aggregate_only", "bounds"})
        if unknown:
            raise _err(cp + unknown[0], "unknown field")
        out[cname] = ColumnPolicy(None if comps is None else tuple(comps),
                                  _get(c, "aggregate_only", cp, bool, default=False), bounds)
    return out


def parse_dp(raw: dict | None) -> DPPolicy | None:
    if raw is None:
        return None
    pre = "policy.dp."

    def prob(v):
        return None if 0 <= v < 1 else f"must be in [0, 1), got {v}"

    mech = _get(raw, "mechanism", pre, str, default="laplace",
                check=lambda v: None if v in ("laplace", "gaussian") else
                "must be 'laplace' or 'gaussian'")
    dp = DPPolicy(
        epsilon=_get(raw, "epsilon", pre, float, default=1.0, check=_positive),
        delta=_get(raw, "delta", pre, float, default=0.0, check=prob), mechanism=mech,
        budget_epsilon=_get(raw, "budget_epsilon", pre, float, default=10.0, check=_positive),
        budget_delta=_get(raw, "budget_delta", pre, float, default=1e-6, check=prob),
        models=_get(raw, "models", pre, str, default="optional",
                    check=lambda v: None if v in ("optional", "required") else
                    "must be 'optional' or 'required'"))
    if mech == "gaussian" and dp.delta <= 0:
        raise _err(pre + "delta", "the gaussian mechanism needs delta > 0")
    unknown = sorted(set(raw) - {"epsilon", "delta", "mechanism", "budget_epsilon",
                                 "budget_delta", "models"})
    if unknown:
        raise _err(pre + unknown[0], "unknown field")
    return dp
