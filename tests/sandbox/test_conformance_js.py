"""The sandbox as a client no one here wrote sees it: Stellar's JavaScript SDK (pinned in
tests/js/package.json) runs one named check per Horizon call, link, error document and stream
a rehearsal may use (tests/js/conformance.mjs), and every one must pass."""

from __future__ import annotations

from payouts.sandbox import SANDBOX_NETWORK_PASSPHRASE
from tests.support.js import listed_checks, node

#: the checks tests/js/conformance.mjs names; a new check raises this number
CHECK_COUNT = 68


def test_every_js_sdk_check_passes(sandbox):
    names = listed_checks("conformance.mjs")
    assert len(names) == len(set(names)) == CHECK_COUNT
    results = node("conformance.mjs", sandbox.url, SANDBOX_NETWORK_PASSPHRASE)
    assert [r["check"] for r in results] == names
    failed = {r["check"]: r["detail"] for r in results if not r["ok"]}
    passed = len(results) - len(failed)
    assert not failed, f"{passed} passed, {len(failed)} failed: {failed}"
    assert passed == CHECK_COUNT
