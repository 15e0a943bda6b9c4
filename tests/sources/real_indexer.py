"""TFChain's real indexer server for the tests: Subsquid's `@subsquid/graphql-server` (the version
the indexer deploys, installed by tests/indexer_js/install.sh) over a PostgreSQL database whose
tables are shaped as the indexer's processor writes them (tfchain_graphql's TypeORM models and
db/migrations: snake_case columns, `numeric` for BigInt, `integer` for Int, `character varying(n)`
for enums, `jsonb` for object types, a `character varying` primary key `id`), served with
tests/indexer_js/schema.graphql.

The rows come from `IndexerData.from_snapshot` (the same translation the fast fake serves), so
a grid seeded here and in the fake is the same grid. `FaultProxy` puts the fake's fault
injection (5xx bursts, slow answers, failing after N answers, grid proxy `/stats`) and request
log in front of the real server on loopback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Self

import httpx
import psycopg

from tests.sources.indexer_server import IndexerData, IndexerServer, _event_id
from tests.support.servers import PostgresServer, free_port

SERVER_DIR = Path(__file__).resolve().parents[1] / "indexer_js"
SERVER_BIN = SERVER_DIR / "node_modules" / "@subsquid" / "graphql-server" / "bin" / "run.js"

#: The tables of the entities the builder reads, column for column as the processor creates
#: them (entity and field names in snake_case; nullability as in schema.graphql).
TABLES = {
    "farming_policy": (
        '"id" character varying PRIMARY KEY, "grid_version" integer NOT NULL, '
        '"farming_policy_id" integer NOT NULL, "name" text, "cu" integer, "su" integer, "nu" integer, '
        '"ipv4" integer, "minimal_uptime" integer, "policy_created" integer, "policy_end" integer, '
        '"immutable" boolean, "default" boolean, "node_certification" character varying(9), '
        '"farm_certification" character varying(12)'
    ),
    "farm": (
        '"id" character varying PRIMARY KEY, "grid_version" integer NOT NULL, "farm_id" integer NOT NULL, '
        '"name" text NOT NULL, "twin_id" integer NOT NULL, "pricing_policy_id" integer NOT NULL, '
        '"certification" character varying(12), "stellar_address" text, "dedicated_farm" boolean'
    ),
    "twin": (
        '"id" character varying PRIMARY KEY, "grid_version" integer NOT NULL, "twin_id" integer NOT NULL, '
        '"account_id" text NOT NULL, "relay" text, "public_key" text'
    ),
    "node": (
        '"id" character varying PRIMARY KEY, "grid_version" integer NOT NULL, "node_id" integer NOT NULL, '
        '"farm_id" integer NOT NULL, "twin_id" integer NOT NULL, "country" text, "city" text, '
        '"uptime" numeric, "created" integer NOT NULL, "farming_policy_id" integer NOT NULL, '
        '"certification" character varying(9), "secure" boolean, "virtualized" boolean, '
        '"serial_number" text, "created_at" numeric NOT NULL, "updated_at" numeric NOT NULL, '
        '"connection_price" integer, "power" jsonb, "dedicated" boolean NOT NULL, "extra_fee" numeric'
    ),
    "node_resources_total": (
        '"id" character varying PRIMARY KEY, "node_id" character varying NOT NULL UNIQUE REFERENCES "node"("id"), '
        '"hru" numeric NOT NULL, "sru" numeric NOT NULL, "cru" numeric NOT NULL, "mru" numeric NOT NULL'
    ),
    "node_contract": (
        '"id" character varying PRIMARY KEY, "grid_version" integer NOT NULL, "contract_id" numeric NOT NULL, '
        '"twin_id" integer NOT NULL, "node_id" integer NOT NULL, "deployment_data" text NOT NULL, '
        '"deployment_hash" text NOT NULL, "number_of_public_i_ps" integer NOT NULL, '
        '"state" character varying(11) NOT NULL, "resources_used_id" character varying, '
        '"created_at" numeric NOT NULL, "solution_provider_id" integer'
    ),
    "contract_resources": (
        '"id" character varying PRIMARY KEY, "contract_id" character varying NOT NULL REFERENCES "node_contract"("id"), '
        '"hru" numeric NOT NULL, "sru" numeric NOT NULL, "cru" numeric NOT NULL, "mru" numeric NOT NULL'
    ),
    "contract_bill_report": (
        '"id" character varying PRIMARY KEY, "contract_id" numeric NOT NULL, '
        '"discount_received" character varying(7) NOT NULL, "amount_billed" numeric NOT NULL, '
        '"timestamp" numeric NOT NULL'
    ),
    "nru_consumption": (
        '"id" character varying PRIMARY KEY, "contract_id" numeric NOT NULL, "timestamp" numeric NOT NULL, '
        '"window" numeric, "nru" numeric'
    ),
    "uptime_event": (
        '"id" character varying PRIMARY KEY, "node_id" integer NOT NULL, "uptime" numeric NOT NULL, '
        '"timestamp" numeric NOT NULL'
    ),
    "power_target_report": (
        '"id" character varying PRIMARY KEY, "farm_id" integer NOT NULL, "node_id" integer NOT NULL, '
        '"new_power_target" character varying(4) NOT NULL, "block" integer NOT NULL, "timestamp" numeric NOT NULL'
    ),
    "power_state_report": (
        '"id" character varying PRIMARY KEY, "farm_id" integer NOT NULL, "node_id" integer NOT NULL, '
        '"new_power_state" character varying(4) NOT NULL, "block" integer NOT NULL, "timestamp" numeric NOT NULL'
    ),
}


def server_installed() -> bool:
    return SERVER_BIN.exists() and shutil.which("node") is not None


def create_tables(conn: psycopg.Connection) -> None:
    for name, columns in TABLES.items():
        conn.execute(f'CREATE TABLE "{name}" ({columns})')
    conn.execute('CREATE SCHEMA "squid_processor"')
    conn.execute('CREATE TABLE "squid_processor"."status" ("id" integer PRIMARY KEY, "height" integer NOT NULL)')


def _copy(conn: psycopg.Connection, table: str, columns: tuple[str, ...], rows) -> None:
    names = ", ".join(f'"{c}"' for c in columns)
    with conn.cursor() as cursor, cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)


def seed(conn: psycopg.Connection, data: IndexerData, *, uptime: bool = True) -> None:
    """Write `data`'s records into the tables, as the processor would have stored them."""
    t = data.tables
    _copy(
        conn,
        "farming_policy",
        (
            "id",
            "grid_version",
            "farming_policy_id",
            "name",
            "cu",
            "su",
            "nu",
            "ipv4",
            "minimal_uptime",
            "policy_created",
            "policy_end",
            "immutable",
            "default",
            "node_certification",
            "farm_certification",
        ),
        (
            (
                p["id"],
                p["gridVersion"],
                p["farmingPolicyID"],
                p["name"],
                p["cu"],
                p["su"],
                p["nu"],
                p["ipv4"],
                p["minimalUptime"],
                p["policyCreated"],
                p["policyEnd"],
                p["immutable"],
                p["default"],
                p["nodeCertification"],
                p["farmCertification"],
            )
            for p in t["farmingPolicies"]
        ),
    )
    _copy(
        conn,
        "farm",
        (
            "id",
            "grid_version",
            "farm_id",
            "name",
            "twin_id",
            "pricing_policy_id",
            "certification",
            "stellar_address",
            "dedicated_farm",
        ),
        (
            (
                f["id"],
                f["gridVersion"],
                f["farmID"],
                f["name"],
                f["twinID"],
                f["pricingPolicyID"],
                f["certification"],
                f["stellarAddress"],
                f["dedicatedFarm"],
            )
            for f in t["farms"]
        ),
    )
    _copy(
        conn,
        "twin",
        ("id", "grid_version", "twin_id", "account_id", "relay", "public_key"),
        ((w["id"], w["gridVersion"], w["twinID"], w["accountID"], w["relay"], w["publicKey"]) for w in t["twins"]),
    )
    node_columns = (
        "id",
        "grid_version",
        "node_id",
        "farm_id",
        "twin_id",
        "country",
        "city",
        "uptime",
        "created",
        "farming_policy_id",
        "certification",
        "secure",
        "virtualized",
        "serial_number",
        "created_at",
        "updated_at",
        "connection_price",
        "power",
        "dedicated",
        "extra_fee",
    )
    _copy(
        conn,
        "node",
        node_columns,
        (
            (
                n["id"],
                n["gridVersion"],
                n["nodeID"],
                n["farmID"],
                n["twinID"],
                n["country"],
                n["city"],
                n["uptime"],
                n["created"],
                n["farmingPolicyId"],
                n["certification"],
                n["secure"],
                n["virtualized"],
                n["serialNumber"],
                n["createdAt"],
                n["updatedAt"],
                n["connectionPrice"],
                psycopg.types.json.Jsonb(n["power"]) if n["power"] is not None else None,
                n["dedicated"],
                n["extraFee"],
            )
            for n in t["nodes"]
        ),
    )
    _copy(
        conn,
        "node_resources_total",
        ("id", "node_id", "hru", "sru", "cru", "mru"),
        (
            (f"{n['id']}-total", n["id"], r["hru"], r["sru"], r["cru"], r["mru"])
            for n in t["nodes"]
            if (r := n["resourcesTotal"]) is not None
        ),
    )
    _copy(
        conn,
        "node_contract",
        (
            "id",
            "grid_version",
            "contract_id",
            "twin_id",
            "node_id",
            "deployment_data",
            "deployment_hash",
            "number_of_public_i_ps",
            "state",
            "resources_used_id",
            "created_at",
            "solution_provider_id",
        ),
        (
            (
                c["id"],
                c["gridVersion"],
                c["contractID"],
                c["twinID"],
                c["nodeID"],
                c["deploymentData"],
                c["deploymentHash"],
                c["numberOfPublicIPs"],
                c["state"],
                c["resourcesUsed"]["id"] if c["resourcesUsed"] is not None else None,
                c["createdAt"],
                c["solutionProviderID"],
            )
            for c in t["nodeContracts"]
        ),
    )
    _copy(
        conn,
        "contract_resources",
        ("id", "contract_id", "hru", "sru", "cru", "mru"),
        (
            (u["id"], c["id"], u["hru"], u["sru"], u["cru"], u["mru"])
            for c in t["nodeContracts"]
            if (u := c["resourcesUsed"]) is not None
        ),
    )
    _copy(
        conn,
        "contract_bill_report",
        ("id", "contract_id", "discount_received", "amount_billed", "timestamp"),
        (
            (b["id"], b["contractID"], b["discountReceived"], b["amountBilled"], b["timestamp"])
            for b in t["contractBillReports"]
        ),
    )
    _copy(
        conn,
        "nru_consumption",
        ("id", "contract_id", "timestamp", "window", "nru"),
        ((r["id"], r["contractID"], r["timestamp"], r["window"], r["nru"]) for r in t["nruConsumptions"]),
    )
    for table, entity, value in (
        ("power_target_report", "powerTargetReports", ("new_power_target", "newPowerTarget")),
        ("power_state_report", "powerStateReports", ("new_power_state", "newPowerState")),
    ):
        _copy(
            conn,
            table,
            ("id", "farm_id", "node_id", value[0], "block", "timestamp"),
            ((r["id"], r["farmID"], r["nodeID"], r[value[1]], r["block"], r["timestamp"]) for r in t[entity]),
        )
    if uptime:
        _copy(
            conn,
            "uptime_event",
            ("id", "node_id", "uptime", "timestamp"),
            (
                (_event_id(ts, seq), node_id, up, ts)
                for node_id, (tss, ups, seqs) in data.uptime.by_node.items()
                for ts, up, seq in zip(tss, ups, seqs, strict=True)
            ),
        )
    conn.execute('INSERT INTO "squid_processor"."status" ("id", "height") VALUES (0, %s)', (data.height(),))
    for table in TABLES:
        conn.execute(f'ANALYZE "{table}"')


def seed_history(conn: psycopg.Connection, data: IndexerData, months: int) -> None:
    """`months` earlier copies of the month's event rows (uptime, power, bill and traffic
    reports), each shifted back by whole periods in time and block height: the event tables
    then hold months + 1 periods, as a live indexer's hold every month since 2021."""
    from tests.sources.indexer_server import BLOCK_S

    length = data.period.end_ts - data.period.start_ts
    blocks = length // BLOCK_S

    def shifted(event_id: str, k: int) -> str:
        return f"{int(event_id[:10]) - k * blocks:010d}{event_id[10:]}"

    t = data.tables
    start = data.period.start_ts  # copies end before the period: they never reach into its window
    for k in range(1, months + 1):
        back = k * length
        _copy(
            conn,
            "uptime_event",
            ("id", "node_id", "uptime", "timestamp"),
            (
                (shifted(_event_id(ts, seq), k), node_id, up, ts - back)
                for node_id, (tss, ups, seqs) in data.uptime.by_node.items()
                for ts, up, seq in zip(tss, ups, seqs, strict=True)
                if ts - back < start
            ),
        )
        for table, entity, value in (
            ("power_target_report", "powerTargetReports", ("new_power_target", "newPowerTarget")),
            ("power_state_report", "powerStateReports", ("new_power_state", "newPowerState")),
        ):
            _copy(
                conn,
                table,
                ("id", "farm_id", "node_id", value[0], "block", "timestamp"),
                (
                    (
                        shifted(r["id"], k),
                        r["farmID"],
                        r["nodeID"],
                        r[value[1]],
                        r["block"] - k * blocks,
                        int(r["timestamp"]) - back,
                    )
                    for r in t[entity]
                    if int(r["timestamp"]) - back < start
                ),
            )
        _copy(
            conn,
            "contract_bill_report",
            ("id", "contract_id", "discount_received", "amount_billed", "timestamp"),
            (
                (
                    shifted(b["id"], k),
                    b["contractID"],
                    b["discountReceived"],
                    b["amountBilled"],
                    int(b["timestamp"]) - back,
                )
                for b in t["contractBillReports"]
                if int(b["timestamp"]) - back < start
            ),
        )
        _copy(
            conn,
            "nru_consumption",
            ("id", "contract_id", "timestamp", "window", "nru"),
            (
                (shifted(r["id"], k), r["contractID"], int(r["timestamp"]) - back, r["window"], r["nru"])
                for r in t["nruConsumptions"]
                if int(r["timestamp"]) - back < start
            ),
        )
    for table in TABLES:
        conn.execute(f'ANALYZE "{table}"')


class RealIndexer:
    """`@subsquid/graphql-server` on loopback over its own database in a PostgreSQL server."""

    def __init__(self, postgres: PostgresServer, database: str, log_path: Path) -> None:
        self.postgres = postgres
        self.database = database
        self.log_path = log_path
        self.port = free_port()
        self._process: subprocess.Popen | None = None

    @property
    def graphql_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(
            f"host=127.0.0.1 port={self.postgres.port} user=postgres dbname={self.database}", autocommit=True
        )

    @classmethod
    def create(cls, postgres: PostgresServer, data: IndexerData, log_path: Path, *, name: str) -> RealIndexer:
        with psycopg.connect(
            f"host=127.0.0.1 port={postgres.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        indexer = cls(postgres, name, log_path)
        with indexer.connect() as conn:
            create_tables(conn)
            seed(conn, data)
        return indexer

    def start(self, *, statement_timeout_ms: int | None = None) -> Self:
        if not server_installed():
            raise RuntimeError(
                "the indexer's GraphQL server is not installed: run bash tests/indexer_js/install.sh "
                "(the test command does it)"
            )
        env = {
            **os.environ,
            "DB_HOST": "127.0.0.1",
            "DB_PORT": str(self.postgres.port),
            "DB_NAME": self.database,
            "DB_USER": "postgres",
            "DB_PASS": "postgres",
            "GQL_PORT": str(self.port),
        }
        args = ["node", str(SERVER_BIN)]
        if statement_timeout_ms is not None:
            args += ["--sql-statement-timeout", str(statement_timeout_ms)]
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(args, cwd=SERVER_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the indexer server exited: {self.log_path.read_text()[-2000:]}")
            try:
                answer = httpx.post(self.graphql_url, json={"query": "{ squidStatus { height } }"}, timeout=2)
                if answer.status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the indexer server did not answer in 60 s: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class FaultProxy(IndexerServer):
    """The fake's faults and request log, in front of a real indexer server: every request no
    fault takes is forwarded as it came; `/stats` is the grid proxy's answer for `data`."""

    def __init__(self, data: IndexerData, upstream_url: str) -> None:
        super().__init__(data)
        self.upstream_url = upstream_url
        self._client = httpx.Client(timeout=120)

    def _execute(self, raw: bytes, query: str, variables: dict) -> tuple[int, bytes]:
        answer = self._client.post(self.upstream_url, content=raw, headers={"content-type": "application/json"})
        return answer.status_code, answer.content

    def stop(self) -> None:
        super().stop()
        self._client.close()
