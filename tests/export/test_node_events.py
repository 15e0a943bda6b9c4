"""A node-month's uptime and power events on the status site: read from the run's frozen
snapshot (only when its SHA-256 is the run's), noted by the calculation's own machine, shown in
headless Chromium at desktop and phone width (screenshots in each test's temporary folder)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from sqlmodel import Session, select

from payouts.calculation.node_events import MAX_LINES
from payouts.calculation.uptime import OUTCOME_ASLEEP, OUTCOME_REBOOT, OUTCOME_TOO_EARLY, OUTCOME_WOKE
from payouts.export.node_events import EventSource
from payouts.export.server import make_server, serve_in_thread
from payouts.export.site import publish_site
from payouts.export.wording import EVENT_WORDS
from payouts.ledger.db import make_engine, session_scope
from payouts.ledger.models import Receipt
from payouts.periods import Period
from payouts.runs.service import calculate_run
from payouts.snapshot.load import load_snapshot
from tests import factories
from tests.export.test_site_views import _CONTRAST

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WIDTHS = {"desktop": (1400, 1000), "phone": (390, 844)}
PERIOD = Period(81)  # 2025-01
REBOOTING = 501  # reboots once, then sends a report claiming more uptime than time passed
SLEEPER = 502  # farmerbot puts it to sleep and wakes it
STEADY = 503
REBOOT_AT = 300  # report indexes
JUMP_AT = 600
FROZEN_NAME = f"tfgrid-snapshot-{PERIOD.offset}.json"


def _rebooting_reports() -> list[dict]:
    reports = factories.full_uptime_reports(REBOOTING, PERIOD)
    reboot_ts = reports[REBOOT_AT]["timestamp"] - 200
    for index, report in enumerate(reports):
        if index >= REBOOT_AT:
            report["uptime"] = report["timestamp"] - reboot_ts
        if index >= JUMP_AT:
            report["uptime"] += 5_000  # 5,000 s more than the 40 minutes since the last report
    return reports


def _sleeper_events() -> tuple[list[dict], list[dict]]:
    reports = factories.full_uptime_reports(SLEEPER, PERIOD)
    sleep_ts = PERIOD.start_ts + 5 * 86400
    wake_ts = sleep_ts + 8 * 3600
    boot_ts = wake_ts + 240
    power = [
        {"node_id": SLEEPER, "timestamp": sleep_ts, "kind": "target", "value": "Down"},
        {"node_id": SLEEPER, "timestamp": sleep_ts + 60, "kind": "state", "value": "Down"},
        {"node_id": SLEEPER, "timestamp": wake_ts, "kind": "target", "value": "Up"},
        {"node_id": SLEEPER, "timestamp": boot_ts + 30, "kind": "state", "value": "Up"},
    ]
    kept = []
    for report in reports:
        if sleep_ts + 60 <= report["timestamp"] < boot_ts + 120:
            continue  # asleep: no reports
        if report["timestamp"] >= boot_ts:
            report["uptime"] = report["timestamp"] - boot_ts
        kept.append(report)
    return kept, power


def _snapshot_document() -> dict:
    nodes = [factories.node(node_id) for node_id in (REBOOTING, SLEEPER, STEADY)]
    sleeper_reports, power = _sleeper_events()
    uptime = _rebooting_reports() + sleeper_reports + factories.full_uptime_reports(STEADY, PERIOD)
    return factories.snapshot(period_offset=PERIOD.offset, nodes=nodes, uptime_events=uptime, power_events=power)


def _publish(session: Session, site: Path, source: EventSource | None) -> None:
    publish_site(session, site, network="dev", horizon_url="http://127.0.0.1:1", events=source)


def _node(site: Path, node_id: int) -> dict:
    return json.loads((site / "data" / "nodes" / f"{node_id}.json").read_text())


@pytest.fixture(scope="module")
def calculated(tmp_path_factory, new_sqlite_ledger):
    """(folder, ledger url, frozen folder): one calculated month, its snapshot frozen."""
    folder = tmp_path_factory.mktemp("node-events")
    url = new_sqlite_ledger(folder / "ledger.sqlite3")
    frozen = folder / "frozen"
    frozen.mkdir()
    path = factories.write(frozen / FROZEN_NAME, _snapshot_document())
    engine = make_engine(url)
    with session_scope(engine) as session:
        calculate_run(session, load_snapshot(path))
    engine.dispose()
    return folder, url, frozen


@pytest.fixture(scope="module")
def site(calculated):
    folder, url, frozen = calculated
    engine = make_engine(url)
    with Session(engine) as session:
        _publish(session, folder / "site", EventSource(frozen, folder / "cache"))
    engine.dispose()
    return folder / "site"


def test_each_node_month_lists_what_the_calculation_made_of_its_reports(site, calculated):
    _folder, url, _frozen = calculated
    label = PERIOD.label
    rebooting = _node(site, REBOOTING)["events"][label]
    singles = [item for item in rebooting["items"] if item["kind"] == "report"]
    outcomes = [item["outcome"] for item in singles]
    assert OUTCOME_REBOOT in outcomes and OUTCOME_TOO_EARLY in outcomes
    reboot = singles[outcomes.index(OUTCOME_REBOOT)]
    assert reboot["uptime_s"] == 200 and reboot["gap_s"] == 2400 and reboot["credited_s"] == 200
    too_early = singles[outcomes.index(OUTCOME_TOO_EARLY)]
    assert too_early["gap_s"] == 2400 and too_early["credited_s"] == 0
    # the ordinary reports between them are one range each, not hundreds of lines
    ranges = [item for item in rebooting["items"] if item["kind"] == "range" and item["outcome"] == "counted"]
    assert [r["reports"] for r in ranges][:2] == [REBOOT_AT - 1, JUMP_AT - REBOOT_AT - 1]
    assert ranges[0]["gap_s"] == [2400, 2400]
    assert len(rebooting["items"]) < 12 and rebooting["reports"] == len(factories.full_uptime_reports(1, PERIOD))

    sleeper = _node(site, SLEEPER)["events"][label]
    sequence = [item["outcome"] for item in sleeper["items"] if item["kind"] != "range"]
    assert sequence[sequence.index("target_down") :][:5] == [
        "target_down",
        OUTCOME_ASLEEP,
        "wake_request",
        "state_up",
        OUTCOME_WOKE,
    ], sequence
    steady = _node(site, STEADY)["events"][label]
    assert [item["outcome"] for item in steady["items"]] == ["first", "counted", "post_period"]

    # the noted machine and the calculation agree on every node's measured uptime
    engine = make_engine(url)
    with Session(engine) as session:
        measured = {r.node_id: r.measured_uptime_s for r in session.exec(select(Receipt))}
    engine.dispose()
    for node_id, uptime_s in measured.items():
        assert _node(site, node_id)["events"][label]["measured_uptime_s"] == uptime_s, node_id
    assert set(EVENT_WORDS) >= {item["outcome"] for n in measured for item in _node(site, n)["events"][label]["items"]}


def test_a_snapshot_whose_hash_differs_from_the_runs_is_not_used(calculated, tmp_path):
    _folder, url, frozen = calculated
    changed = tmp_path / "frozen"
    changed.mkdir()
    document = _snapshot_document()
    document["uptime_events"][10]["uptime"] += 30  # one report differs: another SHA-256
    factories.write(changed / FROZEN_NAME, document)
    missing = tmp_path / "empty"
    missing.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / FROZEN_NAME).write_bytes((frozen / FROZEN_NAME).read_bytes()[:5000])  # cut short
    engine = make_engine(url)
    with Session(engine) as session:
        expected = {
            "changed": (EventSource(changed, tmp_path / "cache"), "not the snapshot the run was calculated from"),
            "missing": (EventSource(missing), "not in the frozen folder"),
            "broken": (EventSource(broken), f"its snapshot {FROZEN_NAME} cannot be read"),
        }
        for name, (source, why) in expected.items():
            _publish(session, tmp_path / name, source)
            events = _node(tmp_path / name, REBOOTING)["events"][PERIOD.label]
            assert set(events) == {"unavailable"}, (name, events)
            assert why in events["unavailable"] and str(tmp_path) not in events["unavailable"], (name, events)
        # nothing made from the changed file was kept for later publishes
        assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())
        # the original file again: the lists are back
        _publish(session, tmp_path / "again", EventSource(frozen))
    engine.dispose()
    assert "items" in _node(tmp_path / "again", REBOOTING)["events"][PERIOD.label]


def test_later_publishes_read_the_cached_lists_and_write_the_same_site(site, calculated, tmp_path):
    folder, url, _frozen = calculated
    assert len(list((folder / "cache").glob("*.json.gz"))) == 1
    moved = tmp_path / "frozen-gone"
    moved.mkdir()  # the frozen file is not there: only the cache can give the lists
    engine = make_engine(url)
    with Session(engine) as session:
        _publish(session, tmp_path / "site", EventSource(moved, folder / "cache"))
    engine.dispose()
    for node_id in (REBOOTING, SLEEPER, STEADY):
        assert _node(tmp_path / "site", node_id) == _node(site, node_id)


def test_a_flapping_node_keeps_a_short_list():
    from payouts.calculation.node_events import node_month_events
    from payouts.snapshot.schema import EVENT_UPTIME

    events = []
    ts = PERIOD.start_ts + 60
    flip = 0
    while ts <= PERIOD.end_ts:
        flip += 1
        # restarts every 80 minutes: a reboot, then one counted report, and so on
        events.append((ts, EVENT_UPTIME, 300 if flip % 2 else 2700))
        ts += 2400
    noted = node_month_events(events, period=PERIOD, power_at_start=None, twin=None)
    singles = [item for item in noted["items"] if item["kind"] != "range"]
    assert len(noted["items"]) <= MAX_LINES + 2  # and one summary of the rest per outcome
    assert {item["outcome"] for item in noted["items"] if item.get("rest")} == {"reboot", "counted"}
    assert sum(item["reports"] for item in noted["items"] if item["kind"] == "range") + len(singles) == noted["reports"]
    assert len(orjson.dumps(noted)) < 30_000


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def web(site, calculated):
    _folder, url, _frozen = calculated
    server = make_server(url, "127.0.0.1", 0, site, network="dev")
    thread = serve_in_thread(server)
    yield server
    server.shutdown()
    thread.join(10)
    server.engine.dispose()


def _open(browser, url: str, width: str, fragment: str, ready_css: str):
    browser.set_window_size(*WIDTHS[width])
    browser.get("about:blank")
    browser.get(f"{url}/#{fragment}")
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ready_css))


def _no_overflow(browser) -> None:
    widths = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1] + 1, widths


@pytest.mark.parametrize("width", list(WIDTHS))
def test_the_node_month_page_lists_a_reboot_and_a_too_early_report(browser, web, width, tmp_path):
    _open(browser, web.url, width, f"node={REBOOTING}&period={PERIOD.label}", "#nodemonth table.event-list tbody tr")
    section = browser.find_element(By.CSS_SELECTOR, "#nodemonth section.events")
    assert section.get_attribute("aria-labelledby") == "events-title"
    rows = section.find_elements(By.CSS_SELECTOR, "tbody tr")
    by_outcome = {}
    for row in rows:
        outcome = row.find_element(By.CSS_SELECTOR, "td.c-outcome .outcome-word").text
        by_outcome.setdefault(outcome, row)
    reboot = by_outcome[EVENT_WORDS["reboot"][0]]
    too_early = by_outcome[EVENT_WORDS["too_early"][0]]
    reboot_ts = factories.full_uptime_reports(REBOOTING, PERIOD)[REBOOT_AT]["timestamp"]
    # human-readable UTC, with the machine-readable time beside it
    stamp = reboot.find_element(By.CSS_SELECTOR, "td.c-when time")
    assert stamp.get_attribute("datetime").startswith(_iso(reboot_ts)[:16])
    assert stamp.text.endswith("UTC") and "2025" in stamp.text
    assert reboot.find_element(By.CSS_SELECTOR, "td.c-reported").text.endswith("3 min 20 s")
    assert reboot.find_element(By.CSS_SELECTOR, "td.c-gap").text.endswith("40 min")
    assert "UptimeTooHigh" in too_early.find_element(By.CSS_SELECTOR, "td.c-outcome").text
    counted = by_outcome[EVENT_WORDS["counted"][0]]
    assert f"{REBOOT_AT - 1} reports" in counted.find_element(By.CSS_SELECTOR, "td.c-event").text
    assert "every ~40 min" in counted.find_element(By.CSS_SELECTOR, "td.c-gap").text
    # accessible: a caption and column headers, readable at phone width
    assert section.find_element(By.TAG_NAME, "caption").get_attribute("textContent").startswith(f"Node {REBOOTING}")
    assert all(th.get_attribute("scope") == "col" for th in section.find_elements(By.TAG_NAME, "th"))
    found = browser.execute_script(_CONTRAST)
    assert found == {"low": [], "unlabelled": [], "tables": [], "headers": 0}
    browser.execute_script("arguments[0].scrollIntoView()", section)
    browser.save_screenshot(str(tmp_path / f"node-month-events-{width}.png"))
    _no_overflow(browser)
    for row in (reboot, too_early):
        assert browser.execute_script(
            "const r = arguments[0].getBoundingClientRect(); return r.left >= 0 && r.right <= window.innerWidth + 1;",
            row,
        )


def test_the_page_says_events_unavailable_for_an_unverified_snapshot(browser, calculated, tmp_path):
    _folder, url, _frozen = calculated
    changed = tmp_path / "frozen"
    changed.mkdir()
    document = _snapshot_document()
    document["uptime_events"][0]["uptime"] += 1
    factories.write(changed / FROZEN_NAME, document)
    engine = make_engine(url)
    with Session(engine) as session:
        _publish(session, tmp_path / "site", EventSource(changed))
    engine.dispose()
    server = make_server(url, "127.0.0.1", 0, tmp_path / "site", network="dev")
    thread = serve_in_thread(server)
    try:
        _open(browser, server.url, "phone", f"node={REBOOTING}&period={PERIOD.label}", "#nodemonth .events-unavailable")
        text = browser.find_element(By.CSS_SELECTOR, "#nodemonth .events-unavailable").text
        assert text.startswith("Events unavailable for this month") and "calculated from" in text
        assert not browser.find_elements(By.CSS_SELECTOR, "#nodemonth table.event-list")
        browser.save_screenshot(str(tmp_path / "node-month-events-unavailable.png"))
        _no_overflow(browser)
    finally:
        server.shutdown()
        thread.join(10)
        server.engine.dispose()


def _iso(ts: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")
