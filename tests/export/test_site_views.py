"""The status site's views in headless Chromium at desktop and phone width: every month on the
landing page, a farm's payout address per month and what to fix, a node-month with what the
minting explorer shows, retries, corrections, the running month and the farm CSV download.
Screenshots go to each test's temporary folder."""

from __future__ import annotations

import calendar
import csv
import io
import time
from datetime import UTC, datetime

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from sqlmodel import Session

from payouts.calculation.engine import Eligibility
from payouts.export.rows import FARMER_FIELDS, iter_entries
from payouts.export.server import make_server, serve_in_thread
from payouts.export.site import publish_site
from payouts.export.wording import ELIGIBILITY_WORDS, RUNNING_PERIOD, STATUS_WORDS, EntryStatus, wording_document
from payouts.export.writers import write_csv
from payouts.ledger.db import make_engine, migrate
from payouts.ledger.states import PaymentStatus
from payouts.money import format_tft
from payouts.periods import Period
from tests.export.support import FORMULA_FARM_ID, HOSTILE_FARM_ID, LOW_UPTIME_NODE, paid_ledger

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WIDTHS = {"desktop": (1400, 1000), "phone": (390, 844)}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def held_web(tmp_path_factory):
    """A site published after the first month only: the last farmer's wallet has no TFT
    trustline yet, so its payments are held (the shared site has them paid by a retry)."""
    folder = tmp_path_factory.mktemp("held")
    url = f"sqlite:///{folder / 'ledger.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    with paid_ledger(url, folder, "batch", periods=(81,)) as paid:
        with Session(paid.engine) as session:
            publish_site(session, folder / "site", network="dev", horizon_url=paid.horizon_url)
            entries = list(iter_entries(session))
        server = make_server(url, "127.0.0.1", 0, folder / "site", network="dev")
        thread = serve_in_thread(server)
        yield server, paid, entries
        server.shutdown()
        thread.join(10)
        server.engine.dispose()


def _viewer(request, browser, base_url: str, tmp_path):
    width, height = WIDTHS[request.param]
    browser.set_window_size(width, height)

    def open_(fragment: str, ready_css: str):
        browser.get("about:blank")
        browser.get(f"{base_url}/#{fragment}")
        WebDriverWait(browser, 10).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
        WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ready_css))
        WebDriverWait(browser, 10).until(lambda d: not d.find_elements(By.CLASS_NAME, "proof-pending"))
        return browser

    def shot(name: str) -> None:
        browser.save_screenshot(str(tmp_path / f"{name}-{request.param}.png"))
        # nothing is cut off: the page is no wider than the window
        widths = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1] + 1, (name, widths)

    open_.shot = shot
    open_.width = request.param
    return open_


@pytest.fixture(params=list(WIDTHS))
def view(request, browser, web, tmp_path):
    """Opens `#hash` at the width and returns a function that saves a screenshot."""
    return _viewer(request, browser, web.url, tmp_path)


@pytest.fixture(params=list(WIDTHS))
def held_view(request, browser, held_web, tmp_path):
    """`view` on the site with held payments."""
    return _viewer(request, browser, held_web[0].url, tmp_path)


def _decimals(millionths: int) -> str:
    whole, fraction = divmod(millionths, 10**6)
    return f"{whole}.{fraction:06d}".rstrip("0").rstrip(".")


def _text(browser, css: str) -> str:
    return browser.find_element(By.CSS_SELECTOR, css).text


def _inside_window(browser, element) -> bool:
    return browser.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return r.left >= 0 && r.right <= window.innerWidth + 1;",
        element,
    )


def test_every_eligibility_and_payment_state_has_plain_words():
    assert set(ELIGIBILITY_WORDS) == {e.value for e in Eligibility}
    assert set(STATUS_WORDS) >= {s.value for s in PaymentStatus} | {"calculated", "approved"}
    for short, sentence in [*ELIGIBILITY_WORDS.values(), *STATUS_WORDS.values()]:
        assert short and sentence and "_" not in short


def test_every_entry_status_has_words_and_every_payment_state_is_an_entry_status():
    assert set(STATUS_WORDS) == set(EntryStatus)
    assert {EntryStatus(s.value) for s in PaymentStatus} <= set(EntryStatus)
    assert wording_document()["status"].keys() == {s.value for s in EntryStatus}
    assert {s for s in EntryStatus if s.shows_hold_reason} == {"held", "failed", "retried"}
    assert {s for s in EntryStatus if s.counts_as_held} == {"held", "failed"}


def test_the_landing_page_lists_every_month_and_the_running_one(view, published):
    _site, _url, _paid, entries = published
    browser = view("", "#months-table tbody tr")
    rows = {r.get_attribute("data-period"): r for r in browser.find_elements(By.CSS_SELECTOR, "#months-table tr.month")}
    for label, name in (("2025-01", "January 2025"), ("2025-02", "February 2025")):
        row = rows[label]
        receipts = [e for e in entries if e["period"] == label and e["entry_kind"] == "receipt"]
        paid_units = sum(e["amount_tft_units"] for e in entries if e["period"] == label and e["status"] == "paid")
        assert name in row.find_element(By.CSS_SELECTOR, "td.c-month").text
        period = Period.from_label(label)
        assert (
            f"{period.start:%b} {period.start.day}, {period.start.year}"
            in row.find_element(By.CSS_SELECTOR, "td.c-dates").text
        )
        assert row.find_element(By.CSS_SELECTOR, "td.c-nodes").text == str(len(receipts))
        rewarded = [e for e in receipts if e["reward_tft_units"]]
        assert (
            f"{len(rewarded)} of {len(receipts)} nodes rewarded"
            in row.find_element(By.CSS_SELECTOR, "td.c-rewarded").text
        )
        assert format_tft(paid_units) in row.find_element(By.CSS_SELECTOR, "td.c-paid-total").text
        assert _inside_window(browser, row.find_element(By.CSS_SELECTOR, "td.c-paid-total"))
    held = [e for e in entries if e["period"] == "2025-01" and e["status"] in ("held", "failed")]
    assert (
        format_tft(sum(e["amount_tft_units"] for e in held))
        in rows["2025-01"].find_element(By.CSS_SELECTOR, "td.c-held-total").text
    )
    running = Period.containing(int(datetime.now(UTC).timestamp()))
    assert rows[running.label].get_attribute("class") == "month running"
    assert rows[running.label].find_element(By.CSS_SELECTOR, "td.c-running").text == RUNNING_PERIOD
    assert browser.find_element(By.CSS_SELECTOR, "label[for=q]").get_attribute("textContent") == "Search for"
    view.shot("landing")


def test_a_farm_shows_its_payout_address_per_month(view, published):
    _site, _url, paid, _entries = published
    wallet = paid.document["farmers"][3]["public_key"]  # had no trustline in 2025-01
    browser = view("farm=103", "#addresses-table tbody tr")
    lines = [
        (tr.find_element(By.CSS_SELECTOR, "td.c-month").text, tr.find_element(By.CSS_SELECTOR, "td.c-address").text)
        for tr in browser.find_elements(By.CSS_SELECTOR, "#addresses-table tr.address-month")
    ]
    assert ("February 2025\n2025-02", wallet) in lines and ("January 2025\n2025-01", wallet) in lines
    january = next(
        tr for tr in browser.find_elements(By.CSS_SELECTOR, "#addresses-table tr.address-month") if "2025-01" in tr.text
    )
    assert "retried" in january.find_element(By.CSS_SELECTOR, "td.c-state").text
    history = january.find_element(By.CSS_SELECTOR, "td.c-fix").text
    assert "the address has no TFT trustline" in history
    assert "retried by the 2025-02 run; paid by the retry of the 2025-02 run" in history
    for cell in browser.find_elements(By.CSS_SELECTOR, "#entries td.c-tft"):
        assert _inside_window(browser, cell)  # the TFT column is never cut off
    view.shot("farm-103")


def test_a_held_payment_says_which_wallet_and_what_to_fix(view, published):
    _site, _url, _paid, entries = published
    held = [e for e in entries if e["farm_id"] == HOSTILE_FARM_ID and e["status"] == "held"]
    browser = view(f"farm={HOSTILE_FARM_ID}", "#fixes li")
    fix = browser.find_element(By.CSS_SELECTOR, "#fixes li.fix-item")
    assert "set a valid Stellar payout address (G...) on the farm" in fix.text
    assert "wallet: no payout address set" in fix.text
    assert f"{len(held)} payments held, {format_tft(sum(e['amount_tft_units'] for e in held))} TFT" in fix.text
    row = browser.find_element(By.CSS_SELECTOR, "#addresses-table tr.address-month")
    assert row.find_element(By.CSS_SELECTOR, "td.c-address").text == "no payout address set"
    assert "set a valid Stellar payout address" in row.find_element(By.CSS_SELECTOR, "td.c-fix").text
    assert _inside_window(browser, fix)
    view.shot("held")


def test_a_held_payment_names_its_wallet_and_the_trustline_to_add(held_view, held_web):
    _server, paid, entries = held_web
    wallet = paid.document["farmers"][3]["public_key"]
    held = [e for e in entries if e["farm_id"] == 103 and e["status"] == "held"]
    assert held and {e["payout_address"] for e in held} == {wallet}
    browser = held_view("farm=103", "#fixes li")
    fix = browser.find_element(By.CSS_SELECTOR, "#fixes li.fix-item")
    assert fix.find_element(By.CSS_SELECTOR, ".fix").text == "add a TFT trustline to the payout address"
    assert fix.find_element(By.CSS_SELECTOR, "code.address").text == wallet
    assert f"{len(held)} payments held, {format_tft(sum(e['amount_tft_units'] for e in held))} TFT" in fix.text
    row = browser.find_element(By.CSS_SELECTOR, "#addresses-table tr.address-month")
    assert row.find_element(By.CSS_SELECTOR, "td.c-address").text == wallet
    assert row.find_element(By.CSS_SELECTOR, "td.c-fix").text.startswith("add a TFT trustline to the payout address")
    assert "January 2025" in row.find_element(By.CSS_SELECTOR, "td.c-month").text
    wallets = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#entries td.c-status .fix-wallet")]
    assert wallets == [f"on wallet {wallet}"] * len(held)
    assert _inside_window(browser, fix.find_element(By.CSS_SELECTOR, "code.address"))
    held_view.shot("held-wallet")
    # the node-month view says the same, with the wallet
    browser = held_view(f"node={held[0]['node_id']}&period=2025-01", "#nodemonth section.payment")
    payment = browser.find_element(By.CSS_SELECTOR, "#nodemonth section.payment")
    assert payment.find_element(By.CSS_SELECTOR, ".status").text == "held"
    assert (
        payment.find_element(By.CSS_SELECTOR, "dd.fix").text
        == f"add a TFT trustline to the payout address (wallet {wallet})"
    )


def test_a_node_month_shows_what_the_minting_explorer_shows(view, published):
    _site, _url, _paid, entries = published
    receipt = next(
        e for e in entries if e["node_id"] == 1010 and e["period"] == "2025-01" and e["entry_kind"] == "receipt"
    )
    browser = view("node=1010&period=2025-01", "#nodemonth dl.details")
    units = _text(browser, "#nodemonth dd.c-units")
    # millionths as the receipt's decimals: CU 3.75, SU 5.461333, NU 0
    expected = " / ".join(_decimals(receipt[k]) for k in ("cu_pm", "su_pm", "nu_pm"))
    assert units == expected and units.startswith("3.75 / 5.461333")
    reward = _text(browser, "#nodemonth dd.c-reward")
    usd = f"${receipt['reward_musd'] // 1000}.{receipt['reward_musd'] % 1000:03d}"
    price = f"${receipt['reference_price_musd'] // 1000}.{receipt['reference_price_musd'] % 1000:03d}/TFT"
    assert reward == f"{receipt['reward_tft']} TFT ({usd} at {price})"
    assert _text(browser, "#nodemonth dd.c-node-type") == receipt["node_type"]
    assert f"({receipt['uptime_percent']} %)" in _text(browser, "#nodemonth dd.c-uptime")
    assert " days" in _text(browser, "#nodemonth dd.c-uptime")
    resources = _text(browser, "#nodemonth dd.c-resources")
    assert resources.startswith(f"{receipt['cru']} / {receipt['mru_gib']} GiB / {receipt['sru_gib']} GiB")
    assert _text(browser, "#nodemonth dd.c-eligibility").startswith("rewarded")
    assert "January 2025" in _text(browser, "#nodemonth dd.c-month")
    payment = browser.find_element(By.CSS_SELECTOR, "#nodemonth section.payment")
    assert payment.find_element(By.CSS_SELECTOR, ".status").text == "paid"
    assert payment.find_element(By.CSS_SELECTOR, "dd.c-proof").text == "proof verified"
    assert payment.find_element(By.CSS_SELECTOR, "dd.c-tx a").get_attribute("href").endswith(receipt["stellar_tx_hash"])
    assert _inside_window(browser, browser.find_element(By.CSS_SELECTOR, "#nodemonth dd.c-reward"))
    view.shot("node-month")


def test_a_node_below_the_uptime_minimum_reads_not_rewarded(view, published):
    browser = view(f"node={LOW_UPTIME_NODE}&period=2025-01", "#nodemonth dl.details")
    assert _text(browser, "#nodemonth dd.c-eligibility").startswith("not rewarded: uptime too low")
    browser = view(f"node={LOW_UPTIME_NODE}", "#entries tbody tr")
    statuses = {
        tr.find_element(By.CSS_SELECTOR, ".status").text
        for tr in browser.find_elements(By.CSS_SELECTOR, "#entries tr.entry")
    }
    assert statuses == {"not rewarded"}  # not an orange "calculated"


def test_a_retry_shows_the_old_and_the_new_address(view, published):
    _site, _url, paid, entries = published
    retry = next(e for e in entries if e["entry_kind"] == "retry" and e["period"] == "2025-01")
    wallet = paid.document["farmers"][3]["public_key"]
    browser = view(f"node={retry['node_id']}&period=2025-01", "#nodemonth section.kind-retry")
    block = browser.find_element(By.CSS_SELECTOR, "#nodemonth section.kind-retry")
    assert block.find_element(By.CSS_SELECTOR, "dd.c-old-address").text == wallet
    assert block.find_element(By.CSS_SELECTOR, "dd.c-new-address").text == retry["payout_address"] == wallet
    assert block.find_element(By.CSS_SELECTOR, ".status").text == "paid"
    assert _inside_window(browser, block.find_element(By.CSS_SELECTOR, "dd.c-new-address"))
    view.shot("retry")


def test_a_correction_shows_previous_actual_and_difference(view, published):
    _site, _url, _paid, entries = published
    correction = next(e for e in entries if e["entry_kind"] == "correction")
    corrected = next(e for e in entries if e["receipt_hash"] == correction["correction_of"] and e is not correction)
    browser = view(f"node={correction['node_id']}&period={correction['period']}", "#nodemonth section.kind-correction")
    block = browser.find_element(By.CSS_SELECTOR, "#nodemonth section.kind-correction")
    previous = corrected["amount_tft_units"]
    assert block.find_element(By.CSS_SELECTOR, "dd.c-previous").text == f"{format_tft(previous)} TFT"
    assert block.find_element(By.CSS_SELECTOR, "dd.c-difference").text == f"+{format_tft(5 * 10**7)} TFT"
    assert block.find_element(By.CSS_SELECTOR, "dd.c-actual").text == f"{format_tft(previous + 5 * 10**7)} TFT"
    view.shot("correction")


def test_the_farm_csv_is_built_in_the_browser_like_the_farmer_export(view, published, browser, tmp_path):
    _site, _url, _paid, entries = published
    downloads = tmp_path / f"downloads-{view.width}"
    downloads.mkdir()
    browser = view(f"farm={FORMULA_FARM_ID}", "#download-csv")
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    browser.find_element(By.ID, "download-csv").click()
    target = downloads / f"farm-{FORMULA_FARM_ID}-payouts.csv"
    deadline = time.monotonic() + 10
    # the browser may show the file before its bytes are written (a loaded machine)
    while not (target.exists() and target.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    got = target.read_text(encoding="utf-8")
    expected = io.StringIO(newline="")
    write_csv([e for e in entries if e["farm_id"] == FORMULA_FARM_ID], expected, FARMER_FIELDS)
    got_rows = list(csv.reader(io.StringIO(got, newline="")))
    want_rows = list(csv.reader(io.StringIO(expected.getvalue(), newline="")))
    assert got_rows[0] == want_rows[0] == list(FARMER_FIELDS)
    assert sorted(got_rows[1:]) == sorted(want_rows[1:]) and len(got_rows) > 2
    assert all(row[FARMER_FIELDS.index("farm_name")].startswith("'=HYPERLINK") for row in got_rows[1:])
    view.shot("farm-csv")


def test_a_node_in_the_running_month_reads_not_ended_yet(view, published):
    running = Period.containing(int(datetime.now(UTC).timestamp()))
    name = f"{calendar.month_name[int(running.label[5:])]} {running.label[:4]}"
    browser = view(f"node=1010&period={running.label}", "#message:not(:empty)")
    assert _text(browser, "#message").startswith(f"{name}: {RUNNING_PERIOD}")
    browser = view("node=1010", "#entries tbody tr")
    assert f"{RUNNING_PERIOD}." in _text(browser, "#message")


_CONTRAST = """
function lum(c) {
  const [r, g, b] = c.match(/[0-9.]+/g).slice(0, 3).map(Number).map((v) => {
    v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}
function background(e) {
  for (; e; e = e.parentElement) {
    const c = getComputedStyle(e).backgroundColor; const parts = c.match(/[0-9.]+/g);
    if (parts && (parts.length < 4 || Number(parts[3]) > 0)) return c;
  }
  return 'rgb(255, 255, 255)';
}
const low = [];
for (const e of document.querySelectorAll('body *')) {
  if (!e.offsetParent) continue;
  if (![...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
  const a = lum(getComputedStyle(e).color); const b = lum(background(e));
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < 4.5) low.push(`${e.tagName}.${e.className} ${ratio.toFixed(2)}`);
}
const unlabelled = [...document.querySelectorAll('input, select, button')].filter((e) => e.offsetParent &&
  !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim()).map((e) => e.id);
const tables = [...document.querySelectorAll('table')].filter((t) => !t.caption).map((t) => t.id);
const headers = [...document.querySelectorAll('th')].filter((th) => th.getAttribute('scope') !== 'col').length;
return { low, unlabelled, tables, headers };
"""


@pytest.mark.parametrize(
    ("fragment", "ready"),
    [
        ("", "#months-table tbody tr"),
        (f"farm={HOSTILE_FARM_ID}", "#fixes li"),
        ("farm=103", "#addresses-table tbody tr"),
        ("node=1020&period=2025-01", "#nodemonth section.kind-correction"),
    ],
)
def test_labels_and_contrast(view, fragment, ready):
    browser = view(fragment, ready)
    found = browser.execute_script(_CONTRAST)
    assert found == {"low": [], "unlabelled": [], "tables": [], "headers": 0}


def test_the_site_works_from_plain_static_hosting(browser, published, tmp_path):
    """No payouts process: Python's own static file server over the published folder."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    site, _url, paid, _entries = published

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    static = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=static.serve_forever, daemon=True).start()
    try:
        browser.set_window_size(*WIDTHS["phone"])
        browser.get("about:blank")
        browser.get(f"http://127.0.0.1:{static.server_address[1]}/#farm=103")
        WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#addresses-table tbody tr"))
        assert paid.document["farmers"][3]["public_key"] in _text(browser, "#addresses-table")
        assert browser.find_element(By.ID, "download-csv").is_displayed()
        browser.save_screenshot(str(tmp_path / "static-hosting-phone.png"))
    finally:
        static.shutdown()
        static.server_close()
