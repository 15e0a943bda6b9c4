"""`payouts calculate` on hostile snapshots: a clear per-node result or a clear refusal, never a
traceback."""

from __future__ import annotations

import gzip
import json

from typer.testing import CliRunner

from payouts.cli.main import app
from tests import factories

runner = CliRunner()
U64_MAX = 2**64 - 1


def _calculate(*args: str, env: dict | None = None):
    return runner.invoke(app, ["calculate", *args], env=env)


def _consumption(**values):
    return {**factories.node()["consumption"], **values}


def test_hostile_numbers_give_per_node_results(tmp_path):
    start = factories.Period(81).start_ts
    nodes = [
        factories.node(1),
        factories.node(2, consumption=_consumption(ip_seconds=2**63)),
        factories.node(3, consumption=_consumption(nru=U64_MAX - 5)),
        factories.node(4, consumption=_consumption(hru_seconds=2**90)),
        factories.node(5),
        factories.node(6),
    ]
    reports = [e for n in (1, 2, 3, 4) for e in factories.full_uptime_reports(n, factories.Period(81))]
    reports += [{"node_id": 5, "timestamp": start + 100, "uptime": 10**5}]
    reports += [{"node_id": 5, "timestamp": start + 2500, "uptime": U64_MAX}]
    reports += [{"node_id": 6, "timestamp": start + 100, "uptime": 2**70}]
    path = tmp_path / "hostile.json.gz"
    path.write_bytes(gzip.compress(json.dumps(factories.snapshot(nodes=nodes, uptime_events=reports)).encode()))
    for extra in (["--dry-run"], []):
        result = _calculate("--snapshot", str(path), "--json", *extra)
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output
        receipts = {r["node_id"]: r for r in json.loads(result.stdout)["receipts"]}
        assert receipts[1]["eligibility"] == "ok"
        assert receipts[2]["eligibility"] == receipts[3]["eligibility"] == "invalid_record"
        assert "u64 arithmetic" in receipts[2]["reason"] and "u64 arithmetic" in receipts[3]["reason"]
        assert receipts[4]["eligibility"] == "ok"
        assert receipts[5]["measured_uptime"] == 2560 and receipts[5]["violation"] is None
        assert receipts[6]["eligibility"] == "invalid_record" and "out of range" in receipts[6]["reason"]


def _bomb(path, inflated_bytes: int) -> None:
    """A gzip file that inflates to `inflated_bytes` of a never-ending JSON string."""
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(b'{"format": "tfgrid-snapshot/1", "notes": ["')
        block = b"A" * (1 << 20)
        for _ in range(inflated_bytes // len(block)):
            out.write(block)


def test_a_gzip_bomb_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "bomb.json.gz"
    _bomb(path, 64 << 20)
    assert path.stat().st_size < 1 << 20
    result = _calculate("--snapshot", str(path), "--json", env={"PAYOUTS_SNAPSHOT_MAX_BYTES": str(8 << 20)})
    assert result.exit_code == 2
    assert "decompresses to more than 8,388,608 bytes" in result.output
    assert "Traceback" not in result.output and "MemoryError" not in result.output


def test_a_jsonl_gzip_bomb_is_refused_too(tmp_path):
    path = tmp_path / "bomb.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=9) as out:
        header = factories.snapshot()
        period = factories.Period(81)
        blocks = {
            "start": {"height": 100, "timestamp": period.start_ts + 4},
            "end": {"height": 100 + period.end_ts // 6 - period.start_ts // 6, "timestamp": period.end_ts + 2},
        }
        line = {"format": "tfgrid-snapshot/2", "network": "dev", "period_offset": 81, "blocks": blocks}
        line.update({key: header[key] for key in ("farming_policies", "farms", "twins")})
        out.write(json.dumps(line).encode() + b"\n")
        for _ in range(64):
            out.write(b" " * (1 << 20))
    result = _calculate("--snapshot", str(path), env={"PAYOUTS_SNAPSHOT_MAX_BYTES": str(8 << 20)})
    assert result.exit_code == 2
    assert "decompresses to more than" in result.output and "Traceback" not in result.output


def test_a_month_whose_total_passes_u64_is_recorded_and_printed(tmp_path):
    """Each reward fits (below 2^63 TFT units); their sum does not fit 64 bits."""
    policy = {**factories.POLICY_DIY, "id": 7, "minimal_uptime": 0, "default": False}
    nodes = [
        factories.node(n, farming_policy_id=7, connection_price=1, consumption=_consumption(ip_seconds=648 * 10**12))
        for n in (1, 2, 3)
    ]
    document = factories.snapshot(nodes=nodes)
    document["farming_policies"].append(policy)
    path = tmp_path / "big.json"
    path.write_text(json.dumps(document))
    result = _calculate("--snapshot", str(path), "--json")
    assert result.exit_code == 0, result.output
    totals = json.loads(result.stdout)["totals"]
    assert totals["tft"] > U64_MAX and totals["rewarded_nodes"] == 3
    again = _calculate("--snapshot", str(path), "--json")  # read back from the ledger
    assert again.exit_code == 0 and json.loads(again.stdout)["totals"] == totals
