"""A dry check of the snapshot sources: would a full build succeed now?

`check_sources` asks the indexer for its processed height and chain time, one page of every
entity the builder reads (so the server validates every field the builder selects against its
schema, and the records' shapes are checked), every farming policy (a policy whose minimal
uptime cannot be had is named), and the grid proxy for its counts. It sends no `totalCount`
query (those scan whole tables) and writes nothing.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from payouts.periods import Period
from payouts.sources.errors import IndexerBehind, IndexerUnreachable, SourceError
from payouts.sources.event_ids import event_position
from payouts.sources.gridproxy import fetch_stats
from payouts.sources.indexer.builder import Builder
from payouts.sources.indexer.options import BuildOptions, NoProgress
from payouts.sources.indexer.queries import (
    BILLS_BY_ID,
    CONTRACTS,
    FARMS,
    NODES,
    NRU,
    POWER_STATES_BY_ID,
    POWER_TARGETS_BY_ID,
    TWINS,
    UPTIME_BY_ID,
    Entity,
)
from payouts.sources.policies import FIXED_SLA_POLICIES

#: Records asked per entity.
CHECK_PAGE = 20


@dataclass
class CheckReport:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: The indexer has not processed the period's window yet (a build now would say "later").
    behind: bool = False
    #: A server could not be reached at all.
    unreachable: bool = False

    @property
    def would_succeed(self) -> bool:
        return not self.problems and not self.behind and not self.unreachable


def _resolves(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        socket.getaddrinfo(host, None)
    except OSError:
        return False
    return True


def _unreachable_words(url: str, exc: Exception) -> str:
    if not _resolves(url):
        return (
            f"{urlsplit(url).hostname} cannot be resolved (no DNS answer): this machine has no network "
            f"access to it, or the name is wrong; run the check where the endpoint is reachable"
        )
    return f"cannot be reached: {exc}"


def check_sources(
    *,
    period: Period,
    network: str,
    graphql_url: str,
    gridproxy_url: str | None,
    options: BuildOptions | None = None,
) -> CheckReport:
    options = options or BuildOptions()
    report = CheckReport()
    builder = Builder(
        Path(os.devnull),  # the check writes nothing
        period=period,
        network=network,
        graphql_url=graphql_url,
        gridproxy_url=gridproxy_url,
        options=options,
        progress=NoProgress(),
        now=lambda: datetime.now(UTC),
    )
    try:
        _check_indexer(builder, report)
        if gridproxy_url and not report.unreachable:
            try:
                stats = fetch_stats(builder.http, gridproxy_url)
                report.lines.append(
                    f"grid proxy {gridproxy_url}: {stats['nodes']:,} nodes, {stats['farms']:,} farms, "
                    f"{stats['twins']:,} twins"
                )
            except IndexerUnreachable as exc:
                report.unreachable = True
                report.problems.append(f"grid proxy {gridproxy_url} {_unreachable_words(gridproxy_url, exc)}")
            except SourceError as exc:
                report.problems.append(f"grid proxy: {exc}")
    finally:
        builder.http.close()
    return report


def _check_indexer(builder: Builder, report: CheckReport) -> None:
    url = builder.gql.url
    try:
        height, processed_ts = builder.check_indexer()
        report.lines.append(
            f"indexer {url}: height {height:,}, chain processed up to "
            f"{datetime.fromtimestamp(processed_ts, UTC):%Y-%m-%d %H:%M} UTC, past the period's window"
        )
    except IndexerUnreachable as exc:
        report.unreachable = True
        report.problems.append(f"indexer {url} {_unreachable_words(url, exc)}")
        return
    except IndexerBehind as exc:
        report.behind = True
        report.lines.append(f"indexer {url}: {exc}")
    except SourceError as exc:
        report.problems.append(f"indexer status: {exc}")
        return
    try:
        _check_policies(builder, report)
        for entity in (NODES, FARMS, TWINS, CONTRACTS):
            _one_page(builder, report, entity)
        for entity in (UPTIME_BY_ID, POWER_TARGETS_BY_ID, POWER_STATES_BY_ID, BILLS_BY_ID, NRU):
            _one_page(builder, report, entity, event_ids=True)
    except IndexerUnreachable as exc:
        report.unreachable = True
        report.problems.append(f"indexer {url} stopped answering: {exc}")


def _check_policies(builder: Builder, report: CheckReport) -> None:
    data = builder.gql.query(
        "query policies { farmingPolicies(orderBy: farmingPolicyID_ASC) "
        "{ farmingPolicyID name cu su nu ipv4 minimalUptime immutable default nodeCertification farmCertification } }",
        what="farming policies",
    )
    items = data.get("farmingPolicies")
    if not isinstance(items, list):
        report.problems.append("farmingPolicies: the answer holds no list")
        return
    supplied = builder.options.policy_file.minimal_uptime if builder.options.policy_file else {}
    unknown = []
    for item in items:
        if not isinstance(item, dict) or type(item.get("farmingPolicyID")) is not int:
            report.problems.append(f"farmingPolicies: a record without a farmingPolicyID: {item!r:.80}")
            continue
        policy_id = item["farmingPolicyID"]
        for name in ("cu", "su", "nu", "ipv4"):
            if type(item.get(name)) is not int:
                report.problems.append(f"farming policy {policy_id}: {name} is {item.get(name)!r}, a build refuses it")
        if item.get("minimalUptime") is None and policy_id not in FIXED_SLA_POLICIES and policy_id not in supplied:
            unknown.append(policy_id)
    report.lines.append(f"farmingPolicies: {len(items)} policies")
    if unknown:
        then = (
            "a build reads them from TFChain's state at the period-end block (the RPC endpoint)"
            if builder.options.rpc_url
            else "a build stops if a node of the period uses one of them (--policies FILE)"
        )
        report.lines.append(
            f"farming policy {', '.join(map(str, unknown))}: no minimal uptime in the indexer and none supplied: {then}"
        )


def _one_page(builder: Builder, report: CheckReport, entity: Entity, *, event_ids: bool = False) -> None:
    try:
        data = builder.gql.query(
            entity.document, {"where": {}, "limit": CHECK_PAGE, "offset": 0}, what=f"one page of {entity.field}"
        )
    except IndexerUnreachable:
        raise
    except SourceError as exc:
        report.problems.append(f"{entity.field}: {exc}")
        return
    items = data.get(entity.field)
    if not isinstance(items, list):
        report.problems.append(f"{entity.field}: the answer holds no list")
        return
    wanted = [name for name in entity.selection.replace("{", " ").replace("}", " ").split()]
    top = [name for name in wanted if name not in ("cru", "mru", "sru", "hru", "state", "target")]
    missing = {name for item in items if isinstance(item, dict) for name in top if name not in item}
    if missing:
        report.problems.append(f"{entity.field}: records lack {', '.join(sorted(missing))}")
    if event_ids:
        odd = [
            item.get("id") for item in items if isinstance(item, dict) and event_position(str(item.get("id"))) is None
        ]
        if odd:
            report.problems.append(f"{entity.field}: ids of no known event id layout, e.g. {odd[0]!r}")
    report.lines.append(f"{entity.field}: {len(items)} record(s) in the first page, fields as the builder reads them")
