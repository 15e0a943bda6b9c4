"""Farming policies' minimal uptime from an operator's policy file.

TFChain's indexer stores `FarmingPolicy.minimalUptime` as a nullable Int and its mappings never
write it, so the value is null on every policy it serves. Policies 1 and 2 do not need it (the
calculation applies the fixed SLA thresholds to them); any other policy in use does, and its
value is then read from a file the operator wrote from TFChain's state (INDEXER.md says how):

    {"network": "main", "block": 12345678,
     "farming_policies": [{"id": 3, "minimal_uptime": 95}, ...]}

`network` and `block` are optional and recorded as given; the file's SHA-256 goes into the
snapshot's `source` so the run names exactly which values it used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import orjson

from payouts.sources.errors import SourceError

#: Policies the calculation rewards with the fixed SLA thresholds, whatever their minimal uptime.
FIXED_SLA_POLICIES = (1, 2)


class PolicyFileError(SourceError):
    """The policy file cannot be read or is malformed; names the file and the entry."""


class PolicyValueUnknown(SourceError):
    """A policy in use has no minimal uptime in the indexer and none was supplied."""


@dataclass(frozen=True)
class PolicyFile:
    path: Path
    sha256: str
    minimal_uptime: dict[int, int]
    network: str | None
    block: int | None

    def source(self) -> dict:
        return {"path": str(self.path), "sha256": self.sha256, "network": self.network, "block": self.block}


def load_policy_file(path: str | Path) -> PolicyFile:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyFileError(f"policy file {path}: cannot be read ({exc.strerror or exc})") from None
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PolicyFileError(f"policy file {path}: not JSON ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("farming_policies"), list):
        raise PolicyFileError(f"policy file {path}: expected an object with a 'farming_policies' list")
    unknown = set(document) - {"network", "block", "farming_policies"}
    if unknown:
        raise PolicyFileError(f"policy file {path}: unknown key(s) {', '.join(sorted(unknown))}")
    network = document.get("network")
    if network is not None and network not in ("main", "test", "dev"):
        raise PolicyFileError(f"policy file {path}: network must be main, test or dev, not {network!r}")
    block = document.get("block")
    if block is not None and (type(block) is not int or block < 0):
        raise PolicyFileError(f"policy file {path}: block must be a block height, not {block!r}")
    values: dict[int, int] = {}
    for index, entry in enumerate(document["farming_policies"]):
        where = f"policy file {path}: farming_policies[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"id", "minimal_uptime"}:
            raise PolicyFileError(f"{where}: expected an object with exactly 'id' and 'minimal_uptime'")
        policy_id, value = entry["id"], entry["minimal_uptime"]
        if type(policy_id) is not int or policy_id < 1:
            raise PolicyFileError(f"{where}: id must be a policy id, not {policy_id!r}")
        if type(value) is not int or not 0 <= value <= 1000:
            raise PolicyFileError(f"{where}: minimal_uptime must be an integer 0..1000, not {value!r}")
        if policy_id in values:
            raise PolicyFileError(f"{where}: policy {policy_id} is listed twice")
        values[policy_id] = value
    return PolicyFile(path, hashlib.sha256(raw).hexdigest(), values, network, block)


def how_to_supply(policy_ids: list[int]) -> str:
    ids = ", ".join(str(i) for i in policy_ids)
    return (
        f'supply it with --policies FILE (a JSON file {{"farming_policies": [{{"id": N, '
        f'"minimal_uptime": V}}]}} with the values of TfgridModule.FarmingPoliciesMap for '
        f"policy {ids} at the period-end block, see payouts/sources/INDEXER.md), or configure an "
        f"archive TFChain RPC endpoint (PAYOUTS_TFCHAIN_RPC_URL or --rpc URL) to read "
        f"TfgridModule.FarmingPoliciesMap at the period-end block"
    )
