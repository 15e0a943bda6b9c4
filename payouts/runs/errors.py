"""Errors of run orchestration; `RunsError` is the base."""


class RunsError(Exception):
    """Base error of run orchestration."""


class RunNotFound(RunsError):
    def __init__(self, run_id: int) -> None:
        super().__init__(f"run {run_id} does not exist (see `payouts runs`)")
        self.run_id = run_id


class RunExistsForPeriod(RunsError):
    """A different snapshot for a period that already has a live run."""


class RunNotReplaceable(RunsError):
    """A recalculation of a period whose run is approved or further along."""
