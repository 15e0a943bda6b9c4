"""Every farming policy's minimal uptime: the indexer's value, else the operator's policy file,
else TFChain's state through an RPC endpoint (`tfchain_state.py`)."""

from __future__ import annotations

from payouts.sources.indexer.text import id_list
from payouts.sources.policies import FIXED_SLA_POLICIES, PolicyFile, PolicyValueUnknown, how_to_supply
from payouts.sources.tfchain_state import ChainPolicyValues


def policies_for_the_chain(policies: list[dict], nodes: list[dict], *, supplied: PolicyFile | None) -> list[int]:
    """Policies in use whose minimal uptime neither the indexer nor the policy file has (and
    that need one): those to read from TFChain's state when an endpoint is configured."""
    from_file = supplied.minimal_uptime if supplied is not None else {}
    in_use = {node["farming_policy_id"] for node in nodes}
    return [
        p["id"]
        for p in policies
        if p["minimal_uptime"] is None
        and p["id"] not in from_file
        and p["id"] not in FIXED_SLA_POLICIES
        and p["id"] in in_use
    ]


def resolve_policies(
    policies: list[dict],
    nodes: list[dict],
    *,
    supplied: PolicyFile | None,
    indexer_url: str,
    from_chain: ChainPolicyValues | None = None,
) -> list[str]:
    """Fill in every policy's minimal uptime in place; the notes it takes.

    The policy file wins over the chain's state, which is read only for policies the file
    does not have. Policies 1 and 2 do not need one (fixed SLA thresholds) and neither does
    a policy no node of the snapshot uses: an unknown value is written as 0 there, with a
    note. A policy in use without a value stops the build (PolicyValueUnknown)."""
    notes: list[str] = []
    from_file = supplied.minimal_uptime if supplied is not None else {}
    chain_values = from_chain.minimal_uptime if from_chain is not None else {}
    read_from_chain = []
    in_use = {node["farming_policy_id"] for node in nodes}
    missing, unused_placeholder, fixed_placeholder, filled = [], [], [], []
    for policy in policies:
        policy_id, value = policy["id"], policy["minimal_uptime"]
        if policy_id in from_file:
            if value is not None and value != from_file[policy_id]:
                assert supplied is not None
                raise PolicyValueUnknown(
                    f"farming policy {policy_id}: the indexer says minimalUptime {value}, the policy "
                    f"file {supplied.path} says {from_file[policy_id]}; one of them is wrong"
                )
            if value is None:
                filled.append(policy_id)
            value = from_file[policy_id]
        elif value is None and policy_id in chain_values:
            read_from_chain.append(policy_id)
            value = chain_values[policy_id]
        if value is None:
            if policy_id in FIXED_SLA_POLICIES:
                fixed_placeholder.append(policy_id)
            elif policy_id in in_use:
                missing.append(policy_id)
            else:
                unused_placeholder.append(policy_id)
            value = 0
        policy["minimal_uptime"] = value
    if missing:
        nodes_of = sorted(n["node_id"] for n in nodes if n["farming_policy_id"] in missing)
        names = ", ".join(str(i) for i in missing)
        raise PolicyValueUnknown(
            f"farming policy {names}: the indexer at {indexer_url} has no minimalUptime for it "
            f"(null) and {len(nodes_of)} node(s) of the period use it (nodes {id_list(nodes_of)}); "
            f"the build cannot guess it: {how_to_supply(missing)}"
        )
    if filled:
        assert supplied is not None
        notes.append(
            f"farming policy {id_list(filled)}: minimal uptime from the policy file {supplied.path.name} "
            f"(sha256 {supplied.sha256}); the indexer has none"
        )
    if read_from_chain:
        assert from_chain is not None
        notes.append(
            f"farming policy {id_list(read_from_chain)}: minimal uptime from TFChain's state "
            f"(TfgridModule.FarmingPoliciesMap) at the period-end block {from_chain.block_height} "
            f"({from_chain.block_hash}), read from {from_chain.url}; the indexer has none"
        )
    if fixed_placeholder:
        notes.append(
            f"farming policy {id_list(fixed_placeholder)}: no minimalUptime in the indexer; the "
            f"calculation applies the fixed SLA thresholds to these policies and does not read it: written as 0"
        )
    if unused_placeholder:
        notes.append(
            f"farming policy {id_list(unused_placeholder)}: no minimalUptime in the indexer and no node "
            f"of the period uses it: written as 0"
        )
    return notes
