"""The grid's entities from the indexer: farming policies, nodes, farms and twins, with notes on
the fields the indexer leaves null, and the check that nodes and farms reference known records."""

from __future__ import annotations

from payouts.sources.indexer.context import BuildContext
from payouts.sources.indexer.paging import where_label
from payouts.sources.indexer.queries import FARMS, NODES, POLICIES, TWINS
from payouts.sources.indexer.records import Record
from payouts.sources.indexer.text import chunks, id_list

#: Used when a node has no connection price on chain (nodes from before prices were per node).
DEFAULT_CONNECTION_PRICE_MUSD = 80


def policies(ctx: BuildContext) -> list[dict]:
    def parse(items: list, offset: int) -> list:
        rows = []
        for index, item in enumerate(items):
            r = Record("farmingPolicies", item, where_label(offset, index, item, "farmingPolicyID"))
            rows.append(
                {
                    "id": r.int("farmingPolicyID"),
                    "name": r.str("name"),
                    "cu": r.int("cu"),
                    "su": r.int("su"),
                    "nu": r.int("nu"),
                    "ipv4": r.int("ipv4"),
                    # nullable in the indexer's schema and never written by its mappings
                    "minimal_uptime": r.int("minimalUptime", nullable=True),
                    "immutable": bool(r.bool("immutable", nullable=True)),
                    "default": bool(r.bool("default", nullable=True)),
                    "node_certification": r.str("nodeCertification", choices=("Diy", "Certified")),
                    "farm_certification": r.str("farmCertification", choices=("NotCertified", "Gold")),
                }
            )
        return rows

    return [
        row
        for page in ctx.pager.paged(
            "policies", POLICIES, {}, parse, page_size=ctx.options.page_size, progress="farming policies"
        )
        for row in page
    ]


def nodes(ctx: BuildContext) -> list[dict]:
    nulls = {"connectionPrice": 0, "certification": 0, "virtualized": 0, "resourcesTotal": 0}

    def parse(items: list, offset: int) -> list:
        rows = []
        for index, item in enumerate(items):
            r = Record("nodes", item, where_label(offset, index, item, "nodeID"))
            resources = r.get("resourcesTotal")
            if resources is None:
                # written as zeros: the calculation refuses the node (mru below 1 GiB)
                resources_row = {"cru": 0, "mru": 0, "sru": 0, "hru": 0, "_null": True}
            else:
                # odd values (negative, huge) pass: the calculation zeroes only this node
                resources_row = {
                    name: r.int(f"resourcesTotal.{name}", bigint=True) for name in ("cru", "mru", "sru", "hru")
                }
            power = r.get("power")
            power_row = None
            if power is not None:
                power_row = [
                    r.str("power.state", choices=("Up", "Down")),
                    r.str("power.target", choices=("Up", "Down")),
                ]
            rows.append(
                {
                    "node_id": r.int("nodeID"),
                    "farm_id": r.int("farmID"),
                    "twin_id": r.int("twinID"),
                    "resources": resources_row,
                    "certification": r.str("certification", nullable=True, choices=("Diy", "Certified")),
                    "farming_policy_id": r.int("farmingPolicyId"),
                    "connection_price": r.int("connectionPrice", nullable=True),
                    "virtualized": r.bool("virtualized", nullable=True),
                    "created": r.int("created"),
                    "_power": power_row,
                }
            )
        return rows

    where = {"created_lte": ctx.end_ts}
    nodes = [
        row
        for page in ctx.pager.paged("nodes", NODES, where, parse, page_size=ctx.options.page_size, progress="nodes")
        for row in page
    ]
    for node in nodes:
        if node["connection_price"] is None:
            nulls["connectionPrice"] += 1
            node["connection_price"] = DEFAULT_CONNECTION_PRICE_MUSD
        if node["certification"] is None:
            nulls["certification"] += 1
            node["certification"] = "Diy"
        if node["virtualized"] is None:
            nulls["virtualized"] += 1
            node["virtualized"] = False
        if node["resources"].pop("_null", False):
            nulls["resourcesTotal"] += 1
    meaning = {
        "connectionPrice": f"written as the default {DEFAULT_CONNECTION_PRICE_MUSD} mUSD",
        "certification": "written as Diy",
        "virtualized": "written as false",
        "resourcesTotal": "written as zeros, so the calculation refuses the node",
    }
    for name, count in nulls.items():
        if count:
            ctx.notes.append(f"{count} node(s) have no {name} in the indexer: {meaning[name]}")
    return nodes


def farms(ctx: BuildContext) -> list[dict]:
    def parse(items: list, offset: int) -> list:
        rows = []
        for index, item in enumerate(items):
            r = Record("farms", item, where_label(offset, index, item, "farmID"))
            certification = r.str("certification", nullable=True, choices=("NotCertified", "Gold"))
            rows.append(
                {
                    "farm_id": r.int("farmID"),
                    "name": r.str("name"),
                    "twin_id": r.int("twinID"),
                    "certification": certification,
                    "stellar_address": r.str("stellarAddress", nullable=True) or "",
                }
            )
        return rows

    farms = [
        row
        for page in ctx.pager.paged("farms", FARMS, {}, parse, page_size=ctx.options.page_size, progress="farms")
        for row in page
    ]
    null_certification = 0
    for farm in farms:
        if farm["certification"] is None:
            null_certification += 1
            farm["certification"] = "NotCertified"
    if null_certification:
        ctx.notes.append(f"{null_certification} farm(s) have no certification in the indexer: written as NotCertified")
    return farms


def twins(ctx: BuildContext, twin_ids: list[int]) -> dict[int, dict]:
    def parse(items: list, offset: int) -> list:
        rows = []
        for index, item in enumerate(items):
            r = Record("twins", item, where_label(offset, index, item, "twinID"))
            pk = r.str("publicKey", nullable=True)
            if pk is not None and pk[:2] in ("0x", "0X"):
                pk = pk[2:]  # the snapshot holds bare hex
            rows.append({"twin_id": r.int("twinID"), "relay": r.str("relay", nullable=True), "pk": pk})
        return rows

    twins: dict[int, dict] = {}
    batches = chunks(twin_ids, ctx.options.ids_per_query)
    ctx.progress.start("twins", len(batches))
    for number, chunk in enumerate(batches):
        for page in ctx.pager.paged(
            f"twins.{number:04d}",
            TWINS,
            {"twinID_in": chunk},
            parse,
            page_size=ctx.options.page_size,
            counted=False,
        ):
            for row in page:
                twins[row["twin_id"]] = row
        ctx.progress.advance("twins", 1)
    # The indexer writes "" for a twin the chain holds without a public key (stored by an
    # event before runtime 124, or with `pk: None`); minting checks a twin's key only when
    # there is one (`if let Some(ref pk) = twin.pk`), so "" is written as null (INDEXER.md).
    empty = [twin_id for twin_id, row in twins.items() if row["pk"] == ""]
    for twin_id in empty:
        twins[twin_id]["pk"] = None
    if empty:
        ctx.notes.append(
            f"{len(empty)} twin(s) have an empty publicKey in the indexer (no public key on chain): "
            f"written as null, which the end-of-period key check skips, as minting does: twins {id_list(empty)}"
        )
    return twins


def references(ctx: BuildContext, nodes: list[dict], farms: list[dict], twins: dict[int, dict]) -> None:
    farm_ids = {farm["farm_id"] for farm in farms}
    without_farm = [n["node_id"] for n in nodes if n["farm_id"] not in farm_ids]
    without_twin = [n["node_id"] for n in nodes if n["twin_id"] not in twins]
    farms_without_twin = [f["farm_id"] for f in farms if f["twin_id"] not in twins]
    if without_farm:
        ctx.notes.append(
            f"{len(without_farm)} node(s) reference a farm the indexer does not have, "
            f"so they get no reward (invalid_record): nodes {id_list(without_farm)}"
        )
    if without_twin:
        ctx.notes.append(
            f"{len(without_twin)} node(s) reference a twin the indexer does not have, "
            f"so they get no reward (invalid_record): nodes {id_list(without_twin)}"
        )
    if farms_without_twin:
        ctx.notes.append(
            f"{len(farms_without_twin)} farm(s) reference a twin the indexer does not "
            f"have: farms {id_list(farms_without_twin)}"
        )
