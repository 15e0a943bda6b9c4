"""What every step of a snapshot build reads through: the indexer, its pager, the build's options,
progress and period, the parts folder, and the notes the steps add to the header."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from payouts.periods import Period
from payouts.sources.graphql import GraphQLClient
from payouts.sources.indexer.options import BuildOptions, Progress
from payouts.sources.indexer.paging import Pager
from payouts.sources.indexer.parts import Parts


@dataclass(frozen=True)
class BuildContext:
    gql: GraphQLClient
    pager: Pager
    options: BuildOptions
    progress: Progress
    period: Period
    #: the header's notes, in the order the steps find them (the build owns the list)
    notes: list[str]
    #: the parts folder, opened once the indexer passed its status check
    parts: Callable[[], Parts]

    @property
    def store(self) -> Parts:
        return self.parts()

    @property
    def start_ts(self) -> int:
        return self.period.start_ts

    @property
    def end_ts(self) -> int:
        return self.period.end_ts

    @property
    def window_end_ts(self) -> int:
        return self.period.window_end_ts
