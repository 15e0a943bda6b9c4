"""`payouts synth`: write a synthetic grid month; `payouts snapshot`: build one from the indexer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from payouts.cli.console import abort, err_console
from payouts.cli.context import get_context
from payouts.cli.rehearsal import sandbox_farmers
from payouts.periods import PeriodError, resolve_period

if TYPE_CHECKING:  # rich's progress bars and the indexer client load when a command runs
    from rich.progress import Progress, TaskID

#: Exit code when the indexer has not processed the period's window yet: try again later.
EXIT_NOT_YET = 3


def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write (.json, or .json.gz to gzip).")],
    nodes: Annotated[int, typer.Option(min=1, help="Number of nodes in the grid.")] = 500,
    period: Annotated[str | None, typer.Option(help="Month label, e.g. 2025-11.")] = None,
    period_offset: Annotated[int | None, typer.Option(help="Period offset, e.g. 91.")] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same arguments write a byte-identical file.")] = 0,
    network: Annotated[str, typer.Option(help="Network written into the snapshot: main, test or dev.")] = "dev",
    snapshot_format: Annotated[
        int,
        typer.Option(
            "--format", help="2: tfgrid-snapshot/2 (JSON Lines, 6-second blocks); 1: tfgrid-snapshot/1.", min=1, max=2
        ),
    ] = 2,
    accounts: Annotated[
        Path | None,
        typer.Option(
            "--accounts", help="A `payouts sandbox init` accounts file: its farmers become the farms' payout addresses."
        ),
    ] = None,
) -> None:
    """Write a realistic synthetic month of the grid as a tfgrid-snapshot/2 file (or /1).

    Reports every 40 minutes with jitter, reboots, outages, sleeping farmerbot nodes, a few
    violations, farms without a payout address, both certifications, NU and public IPs.

    Example (a month paying the sandbox's farmers):

    \b
      payouts synth --accounts accounts.json --nodes 200 --period 2025-11 --out var/snapshots/2025-11.json
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from payouts.snapshot.synthetic import write_synthetic_snapshot

    if period is None and period_offset is None:
        period = "2025-11"
    try:
        month = resolve_period(period, period_offset)
    except PeriodError as exc:
        abort(str(exc), code=2)
    if network not in ("main", "test", "dev"):
        abort(f"--network must be main, test or dev, not {network!r}", code=2)
    if not out.parent.is_dir():
        abort(f"the folder of --out ({out.parent}) does not exist", code=2)
    farm_addresses = sandbox_farmers(accounts) if accounts is not None else None
    with Progress(
        TextColumn("[bold]synthesizing[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("nodes", total=nodes)
        summary = write_synthetic_snapshot(
            out,
            nodes=nodes,
            period=month,
            seed=seed,
            network=network,
            progress=lambda done: bar.update(task, completed=done),
            snapshot_format=snapshot_format,
            farm_addresses=farm_addresses,
            farms=len(farm_addresses) if farm_addresses else None,
        )
    err_console.print(
        f"wrote {summary.path}: {month}, {summary.nodes:,} nodes, {summary.farms:,} farms, "
        f"{summary.uptime_events:,} uptime reports, {summary.power_events:,} power events "
        f"({summary.bytes_written / 1e6:.1f} MB of JSON)"
    )


class _Bars:
    """One rich progress bar per entity, on stderr."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def start(self, entity: str, total: int | None) -> None:
        if entity in self._tasks:
            self._progress.update(self._tasks[entity], total=total)
        else:
            self._tasks[entity] = self._progress.add_task(entity, total=total)

    def advance(self, entity: str, amount: int) -> None:
        if entity not in self._tasks:
            self.start(entity, None)
        self._progress.advance(self._tasks[entity], amount)


def policy_file_for_check(path: Path | None):
    from payouts.sources.errors import SourceError
    from payouts.sources.policies import load_policy_file

    if path is None:
        return None
    try:
        return load_policy_file(path)
    except SourceError as exc:
        abort(str(exc), code=2)


def _check(month, network, graphql_url, gridproxy_url, policy_file, timeout_s: float, retries: int) -> None:
    from payouts.sources.check import check_sources
    from payouts.sources.graphql import RetryPolicy
    from payouts.sources.indexer import BuildOptions

    report = check_sources(
        period=month,
        network=network,
        graphql_url=graphql_url,
        gridproxy_url=gridproxy_url,
        options=BuildOptions(timeout_s=timeout_s, retry=RetryPolicy(attempts=retries), policy_file=policy_file),
    )
    for line in report.lines:
        err_console.print(f"ok: {line}", markup=False, soft_wrap=True)
    for problem in report.problems:
        err_console.print(f"problem: {problem}", markup=False, soft_wrap=True)
    if report.would_succeed:
        err_console.print(f"a full build of {month} would succeed now (nothing written)")
        return
    if report.unreachable:
        abort(f"cannot tell whether a build of {month} would succeed: an endpoint is unreachable (nothing written)")
    if report.behind:
        abort(
            f"a build of {month} would wait: the indexer is behind the period's window (nothing written)",
            code=EXIT_NOT_YET,
        )
    abort(f"a full build of {month} would fail now (nothing written)")


def snapshot(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write (.json, or .json.gz to gzip).")] = None,
    period: Annotated[str | None, typer.Option(help="Month label, e.g. 2025-11.")] = None,
    period_offset: Annotated[int | None, typer.Option(help="Period offset, e.g. 91.")] = None,
    network: Annotated[
        str | None, typer.Option(help="main, test or dev: picks the default endpoints (default: settings).")
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Only check whether a full build would succeed now (status, one page per entity, grid "
            "proxy counts); writes nothing. Exit 0 yes, 1 no, 3 not yet.",
        ),
    ] = False,
    graphql: Annotated[
        str | None, typer.Option("--graphql", help="TFChain GraphQL indexer URL (default: the network's).")
    ] = None,
    gridproxy: Annotated[
        str | None, typer.Option("--gridproxy", help="Grid proxy URL for the count cross-check.")
    ] = None,
    no_gridproxy: Annotated[
        bool, typer.Option("--no-gridproxy", help="Skip the cross-check against the grid proxy.")
    ] = False,
    retries: Annotated[int, typer.Option(min=1, help="Attempts per request on 5xx, timeouts, lost connections.")] = 5,
    timeout_s: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds per request.")] = 60.0,
    policies: Annotated[
        Path | None,
        typer.Option(
            "--policies",
            help="JSON file of farming policies' minimal uptime read from TFChain "
            "(for policies the indexer has none for; see payouts/sources/INDEXER.md).",
        ),
    ] = None,
    rehearsal: Annotated[
        bool,
        typer.Option(
            "--rehearsal",
            help="Sandbox network only: freeze a period before its post-period window has closed.",
        ),
    ] = False,
    rpc: Annotated[
        str | None,
        typer.Option(
            "--rpc",
            help="A TFChain node's HTTP JSON-RPC URL, for the timestamps of blocks without events at the "
            "period's edges (default: the setting PAYOUTS_TFCHAIN_RPC_URL; without one, the notes name the ambiguity).",
        ),
    ] = None,
) -> None:
    """Freeze a period's inputs from TFChain's GraphQL indexer into a tfgrid-snapshot/2 file.

    Refuses a period whose post-period window (end + 27 h) has not closed by the chain's time,
    saying when it will have (exit 3; --rehearsal allows it on the sandbox network). Checks then
    that the indexer has processed the chain past that window (exit 3 otherwise: try again
    later). Finished pages are kept in OUT.parts/ so a rerun resumes; OUT is written atomically
    once every check passed.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from payouts.runs.completeness import PeriodIncomplete, RehearsalRefused, require_complete
    from payouts.sources import endpoints
    from payouts.sources.errors import IndexerBehind, SourceError
    from payouts.sources.graphql import RetryPolicy, check_http_url
    from payouts.sources.indexer import BuildOptions, build_snapshot
    from payouts.sources.policies import load_policy_file

    cli = get_context(ctx)
    settings = cli.settings
    try:
        month = resolve_period(period, period_offset)
    except PeriodError as exc:
        abort(str(exc), code=2)
    network = network or settings.network
    if network not in ("main", "test", "dev"):
        abort(f"--network must be main, test or dev, not {network!r}", code=2)
    if not check:
        try:
            require_complete(month, cli.time(), network=network, rehearsal=rehearsal)
        except PeriodIncomplete as exc:
            abort(f"not frozen: {exc}", code=EXIT_NOT_YET)
        except RehearsalRefused as exc:
            abort(str(exc), code=2)
    graphql_default, gridproxy_default = endpoints(settings, network)
    graphql_url = graphql or graphql_default
    gridproxy_url = None if no_gridproxy else (gridproxy or gridproxy_default)
    try:
        check_http_url(graphql_url, "GraphQL")
        if gridproxy_url is not None:
            check_http_url(gridproxy_url, "grid proxy")
    except SourceError as exc:
        abort(str(exc), code=2)
    if check:
        _check(
            month,
            network,
            graphql_url,
            gridproxy_url,
            policy_file_for_check(policies or settings.snapshot_policies_file),
            timeout_s,
            retries,
        )
        return
    if out is None:
        abort("--out is required (or --check to write nothing)", code=2)
    if not out.parent.is_dir():
        abort(f"the folder of --out ({out.parent}) does not exist", code=2)
    policies = policies or settings.snapshot_policies_file
    try:
        policy_file = load_policy_file(policies) if policies is not None else None
    except SourceError as exc:
        abort(str(exc), code=2)
    rpc_url = rpc or settings.tfchain_rpc_url
    if rpc_url is not None:
        try:
            check_http_url(rpc_url, "TFChain RPC")
        except SourceError as exc:
            abort(str(exc), code=2)
    options = BuildOptions(
        timeout_s=timeout_s, retry=RetryPolicy(attempts=retries), policy_file=policy_file, rpc_url=rpc_url
    )
    with Progress(
        TextColumn("[bold]{task.description}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        try:
            summary = build_snapshot(
                out,
                period=month,
                network=network,
                graphql_url=graphql_url,
                gridproxy_url=gridproxy_url,
                options=options,
                progress=_Bars(bar),
            )
        except IndexerBehind as exc:
            abort(str(exc), code=EXIT_NOT_YET)
        except SourceError as exc:
            abort(f"snapshot not written: {exc}")
    err_console.print(
        f"wrote {summary.path}: {month}, {summary.nodes:,} nodes, {summary.farms:,} farms, "
        f"{summary.uptime_events:,} uptime reports, {summary.power_events:,} power events, "
        f"indexer height {summary.indexer_height:,}, {summary.requests:,} requests"
        + (f" ({summary.parts_reused:,} finished parts reused)" if summary.parts_reused else ""),
        soft_wrap=True,
    )
    for note in summary.notes:
        err_console.print(f"note: {note}", markup=False, soft_wrap=True)
