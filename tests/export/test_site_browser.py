"""The status page in a real headless browser (Debian's chromium), served over loopback HTTP by
the read-only web server: searches, the history chart, proofs checked with WebCrypto, and a
hostile farm name shown as text."""

from __future__ import annotations

import json

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.export.support import HOSTILE_FARM_ID, HOSTILE_FARM_NAME

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _search(browser, web, kind: str, query: str):
    browser.get(f"{web.url}/")
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    Select(browser.find_element(By.ID, "kind")).select_by_value(kind)
    field = browser.find_element(By.ID, "q")
    field.clear()
    field.send_keys(query)
    browser.find_element(By.ID, "go").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "message").text.strip())
    return _rows(browser)


def _rows(browser) -> list[dict]:
    rows = []
    for tr in browser.find_elements(By.CSS_SELECTOR, "#entries tbody tr.entry"):
        cell = lambda name, tr=tr: tr.find_element(By.CSS_SELECTOR, f"td.c-{name}")
        rows.append(
            {
                "period": cell("period").text.split("\n")[0],
                "node": int(cell("node").text),
                "farm": cell("farm").find_element(By.CLASS_NAME, "farm-name").text,
                "status": cell("status").find_element(By.CLASS_NAME, "status").text,
                "receipt": cell("receipt").find_element(By.TAG_NAME, "code").get_attribute("data-hash"),
                "proof": cell("proof").text,
                "tx_link": [a.get_attribute("href") for a in cell("tx").find_elements(By.TAG_NAME, "a")],
            }
        )
    return rows


def _wait_for_proofs(browser) -> list[str]:
    WebDriverWait(browser, 10).until(lambda d: not d.find_elements(By.CLASS_NAME, "proof-pending"))
    return [r["proof"] for r in _rows(browser)]


def test_search_by_node_farm_address_and_receipt_shows_the_right_rows(browser, web, published, tmp_path):
    _site, _url, paid, entries = published

    node = _search(browser, web, "node", "1010")
    assert sorted((r["period"], r["receipt"]) for r in node) == sorted(
        (e["period"], e["receipt_hash"]) for e in entries if e["node_id"] == 1010
    )
    # the history chart: one uptime point and one TFT point per period
    chart = browser.find_element(By.CSS_SELECTOR, "#chart-box svg")
    periods = {e["period"] for e in entries if e["node_id"] == 1010}
    assert len(chart.find_elements(By.CSS_SELECTOR, "circle.pt-uptime")) == len(periods) == 2
    assert len(chart.find_elements(By.CSS_SELECTOR, "circle.pt-tft")) == len(periods)
    assert _wait_for_proofs(browser) == ["proof verified"] * len(node)
    horizon_links = [link for r in node for link in r["tx_link"]]
    assert horizon_links and all(link.startswith(f"{paid.horizon_url}/transactions/") for link in horizon_links)
    browser.save_screenshot(str(tmp_path / "node-1010.png"))

    farm = _search(browser, web, "farm", "102")
    assert sorted(r["receipt"] for r in farm) == sorted(e["receipt_hash"] for e in entries if e["farm_id"] == 102)
    assert {r["farm"] for r in farm} == {"farm 102"}

    by_name = _search(browser, web, "farm", "farm 103")
    assert sorted(r["receipt"] for r in by_name) == sorted(e["receipt_hash"] for e in entries if e["farm_id"] == 103)
    # the held-then-retried receipts of 2025-01 show as retried, their retries as paid
    assert sorted(r["status"] for r in by_name if r["period"] == "2025-01") == ["paid", "paid", "retried", "retried"]

    address = paid.document["farmers"][0]["public_key"]
    by_address = _search(browser, web, "address", address)
    assert sorted(r["receipt"] for r in by_address) == sorted(
        e["receipt_hash"] for e in entries if e["payout_address"] == address
    )

    corrected = next(e for e in entries if e["status"] == "corrected")
    by_receipt = _search(browser, web, "receipt", corrected["receipt_hash"])
    assert sorted(r["status"] for r in by_receipt) == ["calculated", "corrected"]  # the correction, pending
    assert all(r["node"] == corrected["node_id"] for r in by_receipt)
    browser.save_screenshot(str(tmp_path / "receipt.png"))


def test_the_proof_check_fails_for_a_tampered_receipt(browser, web, published, tmp_path):
    site, _url, _paid, entries = published
    entry = next(e for e in entries if e["node_id"] == 1011 and e["merkle_tree_size"] and e["merkle_tree_size"] > 1)
    shard = site / "data" / "nodes" / "1011.json"
    original = shard.read_bytes()
    try:
        document = json.loads(original)
        for candidate in document["entries"]:
            if candidate["receipt_hash"] == entry["receipt_hash"]:
                # one flipped hex digit in the audit path: the recomputed root differs from the memo
                sibling = candidate["merkle_proof"][0]
                candidate["merkle_proof"][0] = ("0" if sibling[0] != "0" else "1") + sibling[1:]
        shard.write_text(json.dumps(document))
        rows = _search(browser, web, "node", "1011")
        proofs = dict(zip([r["receipt"] for r in rows], _wait_for_proofs(browser)))
        assert proofs[entry["receipt_hash"]] == "proof does NOT match"
        assert [p for h, p in proofs.items() if h != entry["receipt_hash"]] == ["proof verified"] * (len(proofs) - 1)
        browser.save_screenshot(str(tmp_path / "tampered.png"))
    finally:
        shard.write_bytes(original)


def test_a_hostile_farm_name_is_shown_as_text(browser, web, published, tmp_path):
    _site, _url, _paid, _entries = published
    rows = _search(browser, web, "farm", str(HOSTILE_FARM_ID))
    assert rows and {r["farm"] for r in rows} == {HOSTILE_FARM_NAME}
    assert {r["status"] for r in rows} == {"held"}
    assert browser.find_elements(By.CSS_SELECTOR, "#entries img, #entries script, #summary img") == []
    assert browser.execute_script("return window.__xss === undefined")
    summary = browser.find_element(By.ID, "summary").text
    assert HOSTILE_FARM_NAME in summary
    notes = browser.find_element(By.CSS_SELECTOR, "#entries td.c-status .fix").text
    assert notes == "To fix: set a valid Stellar payout address (G...) on the farm"
    browser.save_screenshot(str(tmp_path / "hostile.png"))
