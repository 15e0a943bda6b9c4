"""`payouts publish`: the farmers' status page as a static site (no server needed).

Layout of the output folder:

    index.html, app.js, style.css    the page (vanilla JavaScript, text inserted with textContent)
    data/meta.json                   network, explorer link base, generation time, next retry,
                                     the farmer's words (wording.py) and the farmer CSV columns
    data/periods.json                every month: name, start and end, nodes, rewarded, paid,
                                     held; the running month last (it has not ended yet)
    data/runs.json                   every live run's signed manifest and approvals
    data/farms.json                  [[farm id, farm name], ...] for searching farms by name
    data/nodes/<node id>.json        a node's whole history (full entries, proofs included) and,
                                     per month, its uptime and power events (node_events.py)
    data/farms/<farm id>.json        a farm's entries (the columns the table shows)
    data/addresses/<G...>.json       the farms that were paid to, or hold for, an address
    data/receipts/<2 hex>.json       receipt, retry, correction and memo hash -> node ids

The browser fetches only the shards a search needs. Entries are read in one streaming pass
ordered by farm, node and period; a node's and a farm's entries are written as soon as the
group ends, and the receipt index is spilled to per-prefix files, so memory follows the largest
farm, not the ledger.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TextIO

import orjson
from sqlmodel import Session

from payouts import CODE_VERSION
from payouts.export.node_events import EventSource, MonthEvents, site_events
from payouts.export.rows import (
    FARMER_FIELDS,
    ExportFilter,
    iso_utc,
    iter_entries,
    next_retry_period,
    runs_document,
)
from payouts.export.wording import HELD_STATUSES, RUNNING_PERIOD, EntryStatus, wording_document
from payouts.export.writers import dumps_json
from payouts.ledger.kinds import PaymentKind
from payouts.ledger.types import utcnow
from payouts.periods import Period

STATIC_FILES = ("index.html", "app.js", "style.css")
EXPLORERS = {
    "main": "https://stellar.expert/explorer/public/tx/",
    "test": "https://stellar.expert/explorer/testnet/tx/",
}
#: the columns of a farm shard (a node shard has every column)
FARM_ENTRY_FIELDS = (
    "period",
    "entry_kind",
    "node_id",
    "farm_id",
    "farm_name",
    "uptime_percent",
    "eligibility",
    "violation",
    "reason",
    "reward_tft",
    "reward_musd",
    "amount_tft_units",
    "amount_tft",
    "owed_tft_units",
    "status",
    "hold_reason",
    "status_note",
    "what_to_fix",
    "next_retry_period",
    "stellar_tx_hash",
    "paid_at",
    "payout_address",
    "receipt_hash",
    "retry_of",
    "retried_by_period",
    "correction_of",
    "memo",
    "merkle_leaf_index",
    "merkle_tree_size",
    "merkle_proof",
)
assert set(FARMER_FIELDS) <= set(FARM_ENTRY_FIELDS), "the site's CSV download is built from a farm shard"
_ADDRESS = re.compile(r"^G[A-Z2-7]{55}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def explorer_tx_base(network: str, horizon_url: str) -> str | None:
    """Where a transaction is shown: stellar.expert for main and test, the sandbox's Horizon
    (`/transactions/HASH`) for dev. None when the Horizon URL is not plain http(s)."""
    if network in EXPLORERS:
        return EXPLORERS[network]
    if re.match(r"^https?://[^\s\"'<>]+$", horizon_url or ""):
        return horizon_url.rstrip("/") + "/transactions/"
    return None


@dataclass(frozen=True)
class PublishReport:
    out_dir: Path
    entries: int
    nodes: int
    farms: int
    addresses: int


def _write_json(path: Path, document: object) -> None:
    path.write_bytes(dumps_json(document).encode())


def _copy_static(out_dir: Path) -> None:
    static = resources.files("payouts.export") / "static"
    for name in STATIC_FILES:
        (out_dir / name).write_bytes((static / name).read_bytes())


class _SiteWriter:
    """Writes groups as they end; keeps only the small indexes (farms, addresses)."""

    def __init__(self, data: Path, events: dict[str, MonthEvents] | None = None) -> None:
        self.data = data
        self.events = events
        for folder in ("nodes", "farms", "addresses", "receipts", ".spill"):
            (data / folder).mkdir(parents=True)
        self.farm_names: dict[int, str] = {}
        self.address_farms: dict[str, set[int]] = {}
        self.nodes_written: set[int] = set()
        # receipt index spilled by hash prefix: 256 files open at once at most
        self.spill: dict[str, TextIO] = {}
        self.entries = 0
        self.periods: dict[str, dict] = {}

    def node(self, node_id: int, entries: list[dict]) -> None:
        path = self.data / "nodes" / f"{node_id}.json"
        if node_id in self.nodes_written:
            # the node moved to another farm: its history is in two farm groups
            entries = orjson.loads(path.read_bytes())["entries"] + entries
            entries.sort(key=lambda e: e["period"])
        self.nodes_written.add(node_id)
        document: dict = {"node_id": node_id, "entries": entries}
        if self.events is not None:
            document["events"] = self._node_events(node_id, entries)
        _write_json(path, document)

    def _node_events(self, node_id: int, entries: list[dict]) -> dict[str, dict]:
        """Period label -> the node's events that month, or why they are unavailable."""
        assert self.events is not None
        found: dict[str, dict] = {}
        for label in sorted({entry["period"] for entry in entries}):
            month = self.events.get(label)
            if month is None:
                found[label] = {"unavailable": "no calculated run for this month"}
            elif month.unavailable:
                found[label] = {"unavailable": month.unavailable}
            else:
                # a node without events in the snapshot reported nothing that month
                found[label] = month.node(node_id) or {"reports": 0, "measured_uptime_s": 0, "items": []}
        return found

    def farm(self, farm_id: int, entries: list[dict], signon: dict) -> None:
        _write_json(
            self.data / "farms" / f"{farm_id}.json",
            {
                "farm_id": farm_id,
                "farm_name": self.farm_names.get(farm_id, ""),
                "signon": signon,
                "entries": entries,
            },
        )

    def index(self, entry: dict) -> None:
        self.entries += 1
        self._count(entry)
        self.farm_names[entry["farm_id"]] = entry["farm_name"]
        address = entry["payout_address"]
        if address and _ADDRESS.match(address):
            self.address_farms.setdefault(address, set()).add(entry["farm_id"])
        keys = {entry["receipt_hash"], entry.get("memo"), entry.get("retry_of"), entry.get("correction_of")}
        for key in keys:
            if key and _HEX64.match(key):
                prefix = key[:2]
                handle = self.spill.get(prefix)
                if handle is None:
                    handle = self.spill[prefix] = (self.data / ".spill" / prefix).open("a", encoding="ascii")
                handle.write(f"{key} {entry['node_id']}\n")

    def _count(self, entry: dict) -> None:
        """The month's totals for the landing page (by the month the reward was earned in)."""
        totals = self.periods.get(entry["period"])
        if totals is None:
            totals = self.periods[entry["period"]] = {
                "period": entry["period"],
                "start": entry["period_start"],
                "end": entry["period_end"],
                "running": False,
                "nodes": 0,
                "rewarded_nodes": 0,
                "reward_tft_units": 0,
                "reward_musd": 0,
                "paid_count": 0,
                "paid_tft_units": 0,
                "held_count": 0,
                "held_tft_units": 0,
                "owed_tft_units": 0,
            }
        if entry["entry_kind"] == PaymentKind.RECEIPT:  # one per node and month
            totals["nodes"] += 1
            if entry["reward_tft_units"]:
                totals["rewarded_nodes"] += 1
                totals["reward_tft_units"] += entry["reward_tft_units"]
                totals["reward_musd"] += entry["reward_musd"]
        if entry["status"] == EntryStatus.PAID:
            totals["paid_count"] += 1
            totals["paid_tft_units"] += entry["amount_tft_units"]
        elif entry["status"] in HELD_STATUSES:
            totals["held_count"] += 1
            totals["held_tft_units"] += entry["amount_tft_units"]
        # each owed receipt once: a retried entry owes nothing, its newest retry carries it
        totals["owed_tft_units"] += entry["owed_tft_units"]

    def periods_document(self, now: datetime) -> list[dict]:
        """Every month with entries, oldest first, then the running month if it has none yet."""
        months = [self.periods[label] for label in sorted(self.periods)]
        running = Period.containing(int(now.timestamp()))
        if running.label not in self.periods:
            months.append(
                {
                    "period": running.label,
                    "start": iso_utc(running.start),
                    "end": iso_utc(running.end),
                    "running": True,
                    "note": RUNNING_PERIOD,
                }
            )
        return months

    def finish(self) -> None:
        for handle in self.spill.values():
            handle.close()
        for spill in sorted((self.data / ".spill").iterdir()):
            shard: dict[str, list[int]] = {}
            with spill.open(encoding="ascii") as handle:
                for line in handle:
                    key, node = line.split()
                    nodes = shard.setdefault(key, [])
                    if int(node) not in nodes:
                        nodes.append(int(node))
            _write_json(self.data / "receipts" / f"{spill.name}.json", shard)
        shutil.rmtree(self.data / ".spill")
        for address, farms in self.address_farms.items():
            _write_json(self.data / "addresses" / f"{address}.json", {"address": address, "farms": sorted(farms)})
        _write_json(self.data / "farms.json", sorted(self.farm_names.items()))


def _signon(entry: dict) -> dict:
    return {
        "contact_confirmed_at": entry["farm_contact_confirmed_at"],
        "sla_accepted_at": entry["farm_sla_accepted_at"],
    }


def write_site(entries: Iterable[dict], data: Path, events: dict[str, MonthEvents] | None = None) -> _SiteWriter:
    """Group the farm-ordered entries into node and farm shards (with each node-month's
    events when `events` is given)."""
    writer = _SiteWriter(data, events)
    farm_id: int | None = None
    node_id: int | None = None
    farm_entries: list[dict] = []
    node_entries: list[dict] = []
    signon: dict = {}
    for entry in entries:
        if entry["node_id"] != node_id or entry["farm_id"] != farm_id:
            if node_id is not None and node_entries:
                writer.node(node_id, node_entries)
            node_entries = []
            node_id = entry["node_id"]
        if entry["farm_id"] != farm_id:
            if farm_id is not None:
                writer.farm(farm_id, farm_entries, signon)
            farm_entries = []
            farm_id = entry["farm_id"]
        signon = _signon(entry)
        writer.index(entry)
        node_entries.append(entry)
        farm_entries.append({name: entry[name] for name in FARM_ENTRY_FIELDS})
    if node_id is not None and node_entries:
        writer.node(node_id, node_entries)
    if farm_id is not None:
        writer.farm(farm_id, farm_entries, signon)
    writer.finish()
    return writer


def publish_site(
    session: Session,
    out_dir: Path,
    *,
    network: str,
    horizon_url: str,
    generated_at: datetime | None = None,
    events: EventSource | None = None,
) -> PublishReport:
    """Write the whole site into `out_dir` (its `data/` folder is replaced as a whole). With
    `events`, each node-month lists its uptime and power events from the run's frozen snapshot."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / f".data-new-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    try:
        now = generated_at or utcnow()
        months = site_events(session, events) if events is not None else None
        writer = write_site(iter_entries(session, ExportFilter(), order="farm"), staging, months)
        _write_json(staging / "runs.json", runs_document(session))
        _write_json(staging / "periods.json", writer.periods_document(now))
        _write_json(
            staging / "meta.json",
            {
                "format": "tft-payouts-site/1",
                "network": network,
                "explorer_tx_base": explorer_tx_base(network, horizon_url),
                "generated_at": iso_utc(now),
                "code_version": CODE_VERSION,
                "next_retry_period": next_retry_period(session),
                "entries": writer.entries,
                "receipt_prefix_length": 2,
                "running_period": Period.containing(int(now.timestamp())).label,
                "wording": wording_document(),
                "farmer_fields": list(FARMER_FIELDS),
                "node_events": events is not None,
            },
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _copy_static(out_dir)
    # swap the new data in: a reader sees the old site or the new one, then only the new one
    old = out_dir / "data"
    retired = out_dir / f".data-old-{os.getpid()}"
    if old.exists():
        old.rename(retired)
    staging.rename(old)
    shutil.rmtree(retired, ignore_errors=True)
    return PublishReport(
        out_dir=out_dir,
        entries=writer.entries,
        nodes=len(writer.nodes_written),
        farms=len(writer.farm_names),
        addresses=len(writer.address_farms),
    )
