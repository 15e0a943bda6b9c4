"""Bad user input gives a clear error naming what and where, never a traceback, and nothing is
half-written in the ledger: hostile snapshot values and period arguments fed to a real `payouts`
process.

Found here and fixed: a snapshot's `period_offset` of -1 or 10^30 and a `run --period 9999-12`
(a month whose period ends past the year 9999) crashed with a traceback; a lone surrogate
(`"\\ud800"`) in a farm name crashed while writing its receipt, and a NUL (`"\\u0000"`) in one
crashed the receipt insert on PostgreSQL; `--period ２０２６-01` (full-width
digits) was read as 2026-01."""

from __future__ import annotations

import copy
import json

import pytest
from sqlmodel import Session, select

from payouts.ledger.db import make_engine
from payouts.ledger.models import Receipt, Run
from tests import factories
from tests.cli.test_operator_failures import assert_short_failure, payouts
from tests.conftest import _new_postgres_database

U64_MAX = 2**64 - 1
PERIOD = factories.Period(81)


def _document() -> dict:
    return factories.snapshot(nodes=[factories.node(1)], uptime_events=factories.full_uptime_reports(1, PERIOD))


def _write(tmp_path, document: dict | None = None, *, raw: bytes | None = None):
    path = tmp_path / "hostile.json"
    if raw is None:
        raw = json.dumps(document).encode("utf-8", "surrogatepass")
    path.write_bytes(raw)
    return path


def _calculate(path, *extra: str, env: dict | None = None):
    return payouts("calculate", "--snapshot", str(path), "--json", *extra, env=env)


def _nothing_recorded(url: str) -> None:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            assert session.exec(select(Run)).all() == []
            assert session.exec(select(Receipt)).all() == []
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("offset", "words"),
    [
        (-1, "greater than or equal to 0, got integer -1"),
        (10**30, "less than or equal to"),
        (2**63, "less than or equal to"),
    ],
)
def test_bad_input_a_snapshot_period_offset_nobody_can_date_is_refused_naming_the_key(
    tmp_path, sqlite_url, offset, words
):
    document = _document()
    document["period_offset"] = offset
    path = _write(tmp_path, document)
    result = _calculate(path, env={"PAYOUTS_DATABASE_URL": sqlite_url})
    assert result.returncode == 2
    assert_short_failure(result, str(path), "$.period_offset", words)
    _nothing_recorded(sqlite_url)


@pytest.mark.parametrize(
    ("where", "json_path"),
    [
        (lambda d: d["farms"][0].__setitem__("name", "my\ud800farm"), "$.farms[0].name"),
        (lambda d: d["farming_policies"][0].__setitem__("name", "D\udfffIY"), "$.farming_policies[0].name"),
        (lambda d: d["twins"][1].__setitem__("relay", "\udc80"), "$.twins[1].relay"),
        (lambda d: d["farms"][0].__setitem__("stellar_address", "G\ud800"), "$.farms[0].stellar_address"),
        (lambda d: d.__setitem__("notes", ["fine", "x\ud800"]), "$.notes[1]"),
    ],
)
def test_bad_input_a_lone_surrogate_in_snapshot_text_is_refused_naming_the_path(tmp_path, sqlite_url, where, json_path):
    document = _document()
    where(document)
    path = _write(tmp_path, document)
    for extra in (["--dry-run"], []):
        result = _calculate(path, *extra, env={"PAYOUTS_DATABASE_URL": sqlite_url})
        assert result.returncode == 2
        assert_short_failure(result, str(path), json_path, "not a character")
    _nothing_recorded(sqlite_url)


def test_bad_input_a_nul_in_a_farm_name_is_refused_before_anything_is_written_on_postgresql(
    tmp_path, postgres_server, postgres_template
):
    """PostgreSQL's text columns refuse NUL: before, the receipt insert failed with a traceback."""
    url = _new_postgres_database(postgres_server, postgres_template)
    document = _document()
    document["farms"][0]["name"] = "my\x00farm"
    path = _write(tmp_path, document)
    result = _calculate(path, env={"PAYOUTS_DATABASE_URL": url})
    assert result.returncode == 2
    assert_short_failure(result, str(path), "$.farms[0].name", "NUL")
    _nothing_recorded(url)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--period", "9999-12"], "after the last period this program can date"),
        (["--period-offset", str(10**15)], "after the last period this program can date"),
        (["--period-offset", str(10**20)], "the largest number the ledger holds"),
        (["--period-offset", "-1"], "negative"),
        (["--period", "2026-13"], "month 13"),
        (["--period", "２０２６-01"], "not a month label"),
    ],
)
def test_bad_input_a_period_argument_nobody_can_date_is_refused_clearly(sqlite_url, args, words):
    result = payouts("run", *args, "--in-process", env={"PAYOUTS_DATABASE_URL": sqlite_url, "PAYOUTS_NETWORK": "dev"})
    assert result.returncode == 2, result.stdout + result.stderr
    assert_short_failure(result, words, max_lines=3)
    _nothing_recorded(sqlite_url)


@pytest.mark.parametrize(
    "args",
    [["show", str(10**20)], ["status", "--node", str(2**63)], ["reject", str(-(2**64)), "--reason", "x"]],
    ids=["show", "status_node", "reject"],
)
def test_bad_input_an_id_past_the_ledger_integers_is_refused_naming_the_argument(sqlite_url, args):
    """Before, SQLite's driver crashed with OverflowError and a traceback (reject: quoted it)."""
    result = payouts(*args, env={"PAYOUTS_DATABASE_URL": sqlite_url})
    assert result.returncode == 2
    assert_short_failure(
        result,
        f"argument {len(args) if args[0] == 'status' else 2} is",
        "the largest number the ledger holds",
        max_lines=3,
    )


def _set(*keys, value):
    def mutate(d):
        target = d
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (_set("nodes", 0, "resources", "cru", value=2**64), "resources.cru"),
        (_set("nodes", 0, "resources", "mru", value=-1), "resources.mru"),
        (_set("nodes", 0, "consumption", "sru_seconds", value=2**128), "consumption.sru_seconds"),
        (_set("nodes", 0, "consumption", "hru_seconds", value=-5), "consumption.hru_seconds"),
        (_set("farming_policies", 2, "su", value=2**32), "su"),
        (_set("farming_policies", 2, "minimal_uptime", value=2**16), "minimal_uptime"),
        (_set("nodes", 0, "connection_price", value=-80), "connection_price"),
    ],
)
def test_integer_money_a_value_past_its_chain_width_zeroes_only_that_node(tmp_path, mutate, field):
    """Holds: u64 resources, u128 resource-seconds, u32/u16 policy values; a value outside its
    type is `invalid_record` naming the field, and the other node is paid exactly."""
    document = factories.snapshot(
        nodes=[factories.node(1, farming_policy_id=9), factories.node(2)],
        uptime_events=[e for n in (1, 2) for e in factories.full_uptime_reports(n, PERIOD)],
    )
    document["farming_policies"].append({**copy.deepcopy(factories.POLICY_DIY), "id": 9, "default": False})
    mutate(document)
    result = _calculate(_write(tmp_path, document), "--dry-run")
    assert result.returncode == 0, result.stderr
    receipts = {r["node_id"]: r for r in json.loads(result.stdout)["receipts"]}
    assert receipts[1]["eligibility"] == "invalid_record" and field in receipts[1]["reason"]
    assert receipts[2]["eligibility"] == "ok"
    assert receipts[2]["reward"] == {"musd": 14461, "tft": 1807625000}


@pytest.mark.parametrize(
    ("raw", "json_path", "words"),
    [
        (lambda t: t.replace('"cru": 4', '"cru": 4.0'), "$.nodes[0].resources.cru", "valid integer"),
        (lambda t: t.replace('"cru": 4', '"cru": 1e400'), "$.nodes[0].resources.cru", "valid integer"),
        (
            lambda t: t.replace('"period_offset": 81', '"period_offset": 81, "period_offset": 82'),
            "$.period_offset",
            "twice",
        ),
        (lambda t: t.replace('"my_farm"', '"my\xff_farm"'), "$.farms", "utf-8"),
        (lambda t: t.replace('"notes": []', '"notes": ' + "[" * 100000 + "]" * 100000), "$.notes", "recursion"),
    ],
)
def test_bad_input_floats_non_utf8_duplicates_and_nesting_are_refused_naming_the_path(tmp_path, raw, json_path, words):
    """Holds: the file is refused before anything is written, naming the file and the path."""
    document = _document()
    document["notes"] = []
    text = raw(json.dumps(document))
    path = _write(tmp_path, raw=text.encode("latin-1") if "\xff" in text else text.encode())
    result = _calculate(path)
    assert result.returncode == 2
    assert_short_failure(result, str(path), json_path, words)


def test_bad_input_a_duplicate_key_inside_a_node_is_refused_naming_the_path(tmp_path):
    text = json.dumps(_document()).replace('"cru": 4', '"cru": 4, "cru": 400')
    path = _write(tmp_path, raw=text.encode())
    result = _calculate(path, "--dry-run")
    assert result.returncode == 2, result.stdout
    assert_short_failure(result, str(path), "$.nodes[0].resources.cru", "twice")
