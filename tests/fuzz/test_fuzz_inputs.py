"""Fuzzing every input the product parses: each either works or is refused with the product's
own clear error, never an unexpected exception, and never with a secret in the message."""

from __future__ import annotations

import gzip
import json
import string

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from stellar_sdk import Keypair
from typer.testing import CliRunner

from payouts.calculation.engine import calculate_period
from payouts.cli.main import app
from payouts.money import format_tft, parse_tft
from payouts.periods import PeriodError, resolve_period
from payouts.runs.approvals import Manifest, sign_manifest, signature_is_valid
from payouts.runs.funding import FundingError, FundingFile
from payouts.sandbox import running_sandbox
from payouts.snapshot.load import SnapshotError, load_snapshot
from tests import factories

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def _paths(document, prefix=()):
    """Every (path) to a value inside a JSON document."""
    yield prefix
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from _paths(value, (*prefix, index))


def _set(document, path, value):
    target = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


VALID_SNAPSHOT = factories.snapshot(nodes=[factories.node(1), factories.node(2, farm_id=42)])
SNAPSHOT_PATHS = [p for p in _paths(VALID_SNAPSHOT) if p]


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_are_refused_as_snapshots(tmp_path, data):
    for name in ("s.json", "s.json.gz"):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(SnapshotError) as caught:
            load_snapshot(path)
        assert name in str(caught.value)


@FUZZ
@given(
    path_index=st.integers(min_value=0, max_value=len(SNAPSHOT_PATHS) - 1),
    value=json_values,
    delete=st.booleans(),
    compress=st.booleans(),
)
def test_a_mutated_snapshot_loads_and_calculates_or_is_refused_clearly(tmp_path, path_index, value, delete, compress):
    document = json.loads(json.dumps(VALID_SNAPSHOT))
    path = SNAPSHOT_PATHS[path_index]
    if delete and isinstance(path[-1], str):
        target = document
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]
    else:
        _set(document, path, value)
    raw = json.dumps(document).encode()
    file = tmp_path / ("m.json.gz" if compress else "m.json")
    file.write_bytes(gzip.compress(raw, mtime=0) if compress else raw)
    try:
        snapshot = load_snapshot(file)
        # events are checked as they stream through the calculation; odd header values become
        # invalid_record, never a crash
        calculation = calculate_period(snapshot)
    except SnapshotError as exc:
        assert exc.file and exc.problem  # names the file and what is wrong
        return
    assert len(calculation.receipts) == len(snapshot.header.nodes)
    assert all(r.reward_tft_units >= 0 for r in calculation.receipts)


@FUZZ
@given(
    document=st.dictionaries(
        st.sampled_from(
            [
                "format",
                "run_id",
                "network_passphrase",
                "treasury",
                "payout_account",
                "asset_code",
                "asset_issuer",
                "amount_tft_units",
                "manifest_sha256",
                "max_time",
                "tx_hash",
                "envelope_xdr",
                "extra",
            ]
        ),
        json_values,
        max_size=13,
    ),
    raw=st.one_of(st.none(), st.binary(max_size=100)),
)
def test_funding_files_are_read_or_refused_clearly(tmp_path, document, raw):
    path = tmp_path / "funding.json"
    if raw is not None:
        path.write_bytes(raw)
    else:
        document = {**document, "format": document.get("format", "tft-payouts-funding/1")}
        path.write_text(json.dumps(document))
    with pytest.raises(FundingError):
        FundingFile.read(path)


def test_deeply_nested_funding_and_snapshot_files_are_refused(tmp_path):
    """Found by fuzzing: a funding file nested deeper than Python's recursion limit crashed the
    reader with RecursionError."""
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "deep.json").write_text(deep)
    with pytest.raises(FundingError):
        FundingFile.read(tmp_path / "deep.json")
    with pytest.raises(SnapshotError):
        load_snapshot(tmp_path / "deep.json")


MANIFEST = Manifest(
    run_id=1,
    network_passphrase="Test SDF Network ; September 2015",
    payout_account=Keypair.random().public_key,
    ledger_id="00000000-0000-4000-8000-000000000000",
    payments_merkle_root="ef" * 32,
    period_offset=91,
    snapshot_sha256="ab" * 32,
    code_version="1",
    payment_count=3,
    total_tft_units=10**9,
    receipts_merkle_root="cd" * 32,
)
APPROVER = Keypair.random()


@FUZZ
@given(
    key=st.one_of(st.text(max_size=60), st.just(APPROVER.public_key)),
    signature=st.one_of(st.text(max_size=100), st.binary(max_size=80).map(lambda b: b.hex())),
)
def test_forged_approval_signatures_are_never_valid(key, signature):
    assert signature_is_valid(MANIFEST, key, signature) is False


@FUZZ
@given(bit=st.integers(min_value=0, max_value=511))
def test_a_genuine_signature_with_one_bit_flipped_is_invalid(bit):
    import base64

    genuine = sign_manifest(MANIFEST, APPROVER)
    assert signature_is_valid(MANIFEST, APPROVER.public_key, genuine)
    raw = bytearray(base64.b64decode(genuine))
    raw[bit // 8] ^= 1 << (bit % 8)
    assert not signature_is_valid(MANIFEST, APPROVER.public_key, base64.b64encode(bytes(raw)).decode())


@FUZZ
@given(units=st.integers(min_value=0, max_value=2**63 - 1))
def test_tft_amounts_round_trip(units):
    assert parse_tft(format_tft(units)) == units


@FUZZ
@given(text=st.text(alphabet=string.printable, max_size=30))
def test_amount_and_period_text_parse_or_raise_value_errors(text):
    try:
        assert parse_tft(text) >= 0 or text.strip().startswith("-")
    except ValueError:
        pass
    try:
        resolve_period(text, None)
    except PeriodError:
        pass


runner = CliRunner()


@FUZZ
@given(
    args=st.sampled_from(
        [
            ["status", "--node"],
            ["export", "--period"],
            ["runs", "--json"],
            ["show"],
            ["receipt"],
            ["run", "--in-process", "--period"],
            ["held", "--json"],
        ]
    ),
    value=st.text(alphabet=string.printable, max_size=20),
)
def test_cli_arguments_never_crash(args, value):
    result = runner.invoke(app, [*args, value])
    assert result.exit_code in (0, 1, 2, 3), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def sandbox():
    with running_sandbox(ledger_close_s=0.1) as server:
        yield server


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD"]),
    path=st.text(alphabet=string.ascii_letters + string.digits + "/_-.%?=&", max_size=40),
    body=st.one_of(st.none(), st.binary(max_size=200), st.text(max_size=200).map(lambda t: {"tx": t})),
)
def test_the_sandbox_answers_every_request_without_a_server_error(sandbox, method, path, body):
    with httpx.Client(base_url=sandbox.url, timeout=10) as client:
        kwargs = {"data": body} if isinstance(body, dict) else {"content": body}
        response = client.request(method, "/" + path.lstrip("/"), **kwargs)
        assert response.status_code < 500 or response.status_code == 504, response.text[:300]
        assert "Traceback" not in response.text
        if response.status_code >= 400 and method != "HEAD":  # a HEAD answer has no body
            assert isinstance(orjson.loads(response.content), dict)
        assert client.get("/").status_code == 200  # still answering


def test_found_by_fuzzing_a_get_with_a_body_does_not_poison_the_connection(sandbox):
    """The unread body of a GET used to be read as the next request on a kept-alive connection."""
    with httpx.Client(base_url=sandbox.url, timeout=10) as client:
        assert client.request("GET", "/", content=b"\x00GET / HTTP/1.1").status_code == 200
        assert client.get("/").status_code == 200
        head = client.request("HEAD", "/")
        assert head.status_code == 405  # not http.server's bare 501


@FUZZ
@given(
    field=st.sampled_from(
        [
            "APPROVERS",
            "NETWORK",
            "MAX_RETRIES",
            "BATCH_SIZE",
            "SCHEDULE_CRON",
            "FIRST_PERIOD",
            "LAST_PERIOD",
            "LEASE_TTL_S",
            "MEMO_MODE",
            "CHANNEL_KEY_FILES",
        ]
    ),
    value=st.text(alphabet=string.ascii_letters + string.digits + " ,.-*/:=\t", max_size=40),
)
def test_settings_from_hostile_environment_values(monkeypatch, field, value):
    from pydantic import ValidationError

    from config.settings import Settings
    from payouts.wiring import program_window
    from workers.celery_app import _cron_fields

    monkeypatch.setenv(f"PAYOUTS_{field}", value)
    try:
        settings = Settings()
    except ValidationError:
        return
    for check in (lambda: _cron_fields(settings.schedule_cron), lambda: program_window(settings)):
        try:
            check()
        except ValueError as exc:  # refused with the setting named
            assert "schedule_cron" in str(exc) or "first_period" in str(exc)


@FUZZ
@given(password=st.text(alphabet=string.ascii_letters + string.digits + "!$%", min_size=8, max_size=24))
def test_the_database_password_is_never_shown(password):
    from pydantic import SecretStr

    from config.settings import Settings

    # a password that is also a word of the settings' own text (e.g. "snapshot") proves nothing
    baseline = Settings(database_url=SecretStr("postgresql+psycopg://payouts:x@db.internal/payouts"))
    assume(password not in repr(baseline) + str(baseline) + baseline.ledger_url_for_display())
    settings = Settings(database_url=SecretStr(f"postgresql+psycopg://payouts:{password}@db.internal/payouts"))
    assert password not in repr(settings) and password not in str(settings)
    assert password not in settings.ledger_url_for_display()


def test_a_new_sqlite_ledger_is_readable_by_its_owner_only(tmp_path):
    import stat

    from payouts.ledger.db import make_engine, migrate

    migrate(make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite3'}"))
    for name in ("ledger.sqlite3", "ledger.sqlite3-wal"):
        path = tmp_path / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
