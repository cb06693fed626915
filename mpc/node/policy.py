"""A node's policy: may this signed manifest run here?

Checked by every node on its own, before any data is read: the analyst's key is allowed, the
computation is allowed and registered, every recipient is allowed, every named party exists,
this node's own data source exists, and the consortium matches. Row limits and the minimum
group size are checked again when the data is loaded (`check_rows`), because only then does
the node know its row count. A refusal is a `PolicyError` with a short machine-readable code
(`policy.analyst`, `policy.computation`, ...) and a sentence for humans.
"""

from __future__ import annotations

from mpc.node import codes
from mpc.node.config import ANALYST, NodeConfig
from mpc.node.manifest import Manifest
from network.errors import SmpcError


class PolicyError(SmpcError):
    """This node's policy refuses the job. `code` names the rule."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def check_manifest(m: Manifest, cfg: NodeConfig, registry: dict) -> None:
    """Raise PolicyError if this node's policy refuses the manifest."""
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


def check_rows(rows: int, cfg: NodeConfig) -> None:
    """Row limits on this node's own data for one job."""
    if rows > cfg.policy.max_rows:
        raise PolicyError(codes.POLICY_MAX_ROWS, f"{rows} rows exceed policy.max_rows = "
                          f"{cfg.policy.max_rows}")
    if rows < cfg.policy.min_group_size:
        raise PolicyError(codes.POLICY_MIN_GROUP_SIZE, f"{rows} rows are fewer than "
                          f"policy.min_group_size = {cfg.policy.min_group_size}")
