"""Cross-check of the indexer's counts against the grid proxy (`GET /stats`).

The grid proxy keeps its own copy of the grid's current state. Both should count the same
nodes, farms and twins; a small difference (the two at slightly different heights) becomes a
note in the snapshot, a large one stops the build because one of the two is broken.
"""

from __future__ import annotations

from dataclasses import dataclass

from payouts.sources.errors import CrossCheckFailed, IndexerQueryError
from payouts.sources.graphql import JsonHttp, check_http_url

#: The counts compared: grid proxy `/stats` key -> indexer connection field.
COMPARED = {"nodes": "nodesConnection", "farms": "farmsConnection", "twins": "twinsConnection"}


@dataclass(frozen=True)
class CountCheck:
    what: str
    indexer: int
    gridproxy: int

    @property
    def difference(self) -> int:
        return abs(self.indexer - self.gridproxy)


def fetch_stats(http: JsonHttp, gridproxy_url: str) -> dict[str, int]:
    url = check_http_url(gridproxy_url, "grid proxy").rstrip("/") + "/stats"
    answer = http.request_json("GET", url, what="grid proxy stats")
    if not isinstance(answer, dict):
        raise IndexerQueryError(f"{url}: expected a JSON object")
    counts = {}
    for key in COMPARED:
        value = answer.get(key)
        if type(value) is not int or value < 0:
            raise IndexerQueryError(f"{url}: {key!r} is {value!r}, expected a count")
        counts[key] = value
    return counts


def compare_counts(
    indexer: dict[str, int], gridproxy: dict[str, int], *, tolerance_ratio: float, gridproxy_url: str
) -> list[str]:
    """Notes for small differences; CrossCheckFailed when one exceeds the tolerance."""
    notes = []
    for key in COMPARED:
        check = CountCheck(key, indexer[key], gridproxy[key])
        if check.difference == 0:
            continue
        allowed = int(max(check.indexer, check.gridproxy) * tolerance_ratio)
        text = f"the indexer counts {check.indexer} {key} now, the grid proxy at {gridproxy_url} {check.gridproxy}"
        if check.difference > allowed:
            raise CrossCheckFailed(
                f"{text}: a difference of {check.difference}, more than the {allowed} allowed "
                f"({tolerance_ratio:.1%}); one of them is out of date or broken"
            )
        notes.append(f"{text} (a difference of {check.difference}, within the tolerance)")
    return notes
