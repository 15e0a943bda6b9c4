"""The command table: each command's module is imported only when that command is used.

`payouts --help` lists the commands from this table without importing any of them (the ledger,
stellar_sdk, celery and httpx stay unloaded), so it prints at once. Every command's help ends
with an example, and options show their type in words (a flag shows none).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer
import typer.main
from typer._click.core import Command, Context, Parameter
from typer._click.formatting import HelpFormatter
from typer.core import TyperCommand, TyperGroup, TyperOption


@dataclass(frozen=True)
class Entry:
    target: str  # "module:attribute": a command function or a Typer app (a group)
    short_help: str


_M = "payouts.cli."
#: where the root group keeps the arguments after the command's name (ctx.meta)
ARGS_KEY = "payouts.cli.args"

COMMANDS: dict[str, Entry] = {
    "run": Entry(_M + "operate:run", "Bring a period forward now: freeze inputs, calculate, pay, reconcile, export."),
    "calculate": Entry(
        _M + "run:calculate", "Calculate every node's reward for the snapshot's period and record the run."
    ),
    "runs": Entry(_M + "run:runs", "List every run with its state and what it waits for."),
    "show": Entry(_M + "run:show", "Show the review an approver needs: totals against the previous period, ..."),
    "approve": Entry(
        _M + "approve:approve", "Show a run's review and manifest, then sign the manifest with an approver key."
    ),
    "reject": Entry(_M + "approve:reject", "Reject a run for good; its period can then be calculated again."),
    "pay": Entry(
        _M + "pay:pay", "Pay every payable receipt of an approved run exactly once, on the configured network."
    ),
    "reconcile": Entry(
        _M + "pay:reconcile", "Compare the payout account's payments on chain with the ledger for a period's run."
    ),
    "reclaim": Entry(
        _M + "pay:reclaim", "Take back a run's claimable balances that nobody claimed within the reclaim window."
    ),
    "recover": Entry(_M + "pay:recover", "Scan the chain for a run: adopt what a lost ledger state already paid, ..."),
    "statement": Entry(
        _M + "statement:statement", "A period's statement: owed carried in, new receipts, retries, corrections, ..."
    ),
    "held": Entry(
        _M + "pay:held", "Everything outstanding: one entry per owed receipt that is held or being retried, ..."
    ),
    "pause": Entry(_M + "operate:pause", "Stop new submissions everywhere (a kill switch)."),
    "resume": Entry(
        _M + "operate:resume", "Allow submissions again; paying runs continue at the next trigger or `payouts run`."
    ),
    "continue": Entry(
        _M + "operate:continue_", "Continue a stopped run exactly where it stopped, once its cause is fixed."
    ),
    "synth": Entry(
        _M + "snapshot:synth", "Write a realistic synthetic month of the grid as a tfgrid-snapshot/2 file (or /1)."
    ),
    "snapshot": Entry(
        _M + "snapshot:snapshot",
        "Freeze a period's inputs from TFChain's GraphQL indexer into a tfgrid-snapshot/2 file.",
    ),
    "demo": Entry(_M + "demo:demo", "Run a month end to end: sandbox network and accounts, a synthetic grid, ..."),
    "funding": Entry(
        _M + "funding:app", "Two-tier funding: the treasury funds the payout account with exactly a run's total."
    ),
    "receipt": Entry(
        _M + "receipt:app", "Receipts: `payouts receipt HASH` prints the canonical receipt JSON; `payouts ..."
    ),
    "approvers": Entry(
        _M + "approvers:app",
        "The approver set recorded in the ledger: a change takes effect once signed by the set before it.",
    ),
    "db": Entry(_M + "db:app", "Ledger database: migrations, status and backups."),
    "sandbox": Entry(_M + "sandbox:app", "The sandbox Stellar network: a loopback Horizon subset that validates ..."),
    "keys": Entry(_M + "rehearsal:keys_app", "Stellar keys for approvers, treasury signers and payout accounts."),
    "export": Entry(
        _M + "export:export", "Export every receipt with its state and proof (SPEC 7), streamed row by row."
    ),
    "status": Entry(_M + "export:status", "A farmer's payouts per period: eligible or not and why, reward, state, ..."),
    "publish": Entry(
        _M + "export:publish", "Write the farmers' status page: a static site with JSON shards, hostable anywhere."
    ),
    "web": Entry(_M + "export:web", "Serve the published site and read-only exports (/export.json, /export.csv)."),
    "correct": Entry(
        _M + "export:correct", "Record a correction entry; it never edits history and joins the next run to be paid."
    ),
    "corrections": Entry(
        _M + "export:corrections", "List the recorded corrections: when, by whom, why, how much, and where ..."
    ),
    "farms": Entry(_M + "export:farms_app", "Farms' sign-on to the revenue model."),
    "nodes": Entry(_M + "export:nodes_app", "Nodes' move to the revenue model (v3 opt-out, v4 account)."),
}

#: An example per command path (a command's own docstring may already end with one).
EXAMPLES: dict[str, str] = {
    "run": "payouts run --period 2025-11            # queue it for the workers\n"
    "payouts run --period 2025-11 --in-process   # or do it here, to the end\n"
    "payouts run --retries-now --in-process      # pay held payments that can be paid now",
    "calculate": "payouts calculate --snapshot var/snapshots/2025-11.json",
    "runs": "payouts runs --json",
    "show": "payouts show 12",
    "approve": "payouts approve 12 --key ~/keys/approver.key",
    "reject": "payouts reject 12 --reason 'wrong snapshot'",
    "pay": "payouts pay 12",
    "reconcile": "payouts reconcile --period 2025-11",
    "reclaim": "payouts reclaim 7",
    "recover": "payouts recover 12 --accept 'A. Operator: key rotation of channel 3'",
    "held": "payouts held --json",
    "statement": "payouts statement --period 2025-11",
    "pause": "payouts pause --reason 'investigating a difference'",
    "resume": "payouts resume",
    "continue": "payouts continue 12",
    "synth": "payouts synth --accounts accounts.json --nodes 200 --period 2025-11 --out var/snapshots/2025-11.json",
    "snapshot": "payouts snapshot --period 2025-11 --network main --out var/snapshots/2025-11.json",
    "demo": "payouts demo --nodes 200 --folder demo",
    "funding": "payouts funding export 12 --out funding-12.json",
    "funding export": "payouts funding export 12 --out funding-12.json",
    "funding sign": "payouts funding sign funding-12.json --key ~/keys/treasury-signer.key",
    "funding submit": "payouts funding submit funding-12.json",
    "receipt": "payouts receipt show 5f0c...e1   (a receipt hash from `payouts export`)",
    "receipt show": "payouts receipt show 5f0c...e1",
    "receipt verify": "payouts receipt verify receipt.json --expect 5f0c...e1",
    "approvers": "payouts approvers show",
    "approvers show": "payouts approvers show",
    "approvers sign": "payouts approvers sign --key-file ~/keys/approver.key",
    "db": "payouts db upgrade",
    "db init": "payouts db init",
    "db upgrade": "payouts db upgrade",
    "db revision": "payouts db revision 'add a column'",
    "db status": "payouts db status",
    "db backup": "payouts db backup --out ledger-2025-12-01.dump",
    "sandbox": "payouts sandbox up --port 8000",
    "sandbox up": "payouts sandbox up --port 8000 --state var/sandbox --faults 504_after_apply=0.1",
    "sandbox init": "payouts sandbox init --horizon http://127.0.0.1:8000 --out accounts.json "
    "--treasury-signers 3 --threshold 2",
    "keys": "payouts keys new --out ~/keys/approver.key",
    "keys new": "payouts keys new --out ~/keys/approver.key",
    "export": "payouts export --period 2025-11 --format csv --out 2025-11.csv",
    "status": "payouts status --farm 42",
    "publish": "payouts publish --out site",
    "web": "payouts web --host 127.0.0.1 --port 8080",
    "correct": "payouts correct 5f0c...e1 12.5 --reason 'uptime report lost by the indexer'",
    "corrections": "payouts corrections --receipt 5f0c...e1   (or --farm 42, --json)",
    "farms": "payouts farms import signons.csv",
    "farms import": "payouts farms import signons.csv",
    "nodes": "payouts nodes import transitions.csv",
    "nodes import": "payouts nodes import transitions.csv",
}

#: A parameter's type in words (typer shows `<int>`, and `<bool>` even for a flag).
_TYPE_WORDS = {"int": "INTEGER", "str": "TEXT", "float": "NUMBER", "Path": "PATH", "path": "PATH"}


def _type_word(param: Parameter, ctx: Context) -> str | None:
    if isinstance(param, TyperOption) and param.is_flag:
        return None
    shown = type(param).display_type_rich(param, ctx)  # type: ignore[attr-defined]
    if shown is None or not (shown.startswith("<") and shown.endswith(">")):
        return shown
    label = shown[1:-1]
    if label.startswith("list[") and label.endswith("]"):
        return f"{_TYPE_WORDS.get(label[5:-1], label[5:-1].upper())}..."
    return _TYPE_WORDS.get(label, label.upper())


def _plain_types(command: Command, ctx: Context) -> None:
    _plain_params(command.params, ctx)
    original = command.get_params

    def get_params(ctx: Context) -> list[Parameter]:
        params = original(ctx)
        _plain_params(params, ctx)  # the --help option is made here
        return params

    command.get_params = get_params  # type: ignore[method-assign]


def _plain_params(params: list[Parameter], ctx: Context) -> None:
    for param in params:
        if not hasattr(type(param), "display_type_rich") or "display_type_rich" in vars(param):
            continue

        def display(ctx: Context, _param: Parameter = param) -> str | None:
            return _type_word(_param, ctx)

        param.display_type_rich = display  # type: ignore[attr-defined]
        if isinstance(param, TyperOption) and param.metavar is None and not param.is_flag:
            word = _type_word(param, ctx)
            if word:
                param.metavar = word


def finish(command: Command, path: str, ctx: Context) -> Command:
    """Add the example and plain types to a command (and to a group's commands)."""
    example = EXAMPLES.get(path)
    if example and not command.epilog and "Example" not in (command.help or ""):
        command.epilog = "Example:\n\n\b\n" + "\n".join(f"  {line}" for line in example.split("\n"))
    # plain help (click's formatter): prints without loading rich's renderer
    command.rich_markup_mode = None  # type: ignore[attr-defined]
    _plain_types(command, ctx)
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            finish(sub, f"{path} {name}", ctx)
    return command


def load(name: str) -> Command:
    module_name, attribute = COMMANDS[name].target.split(":")
    target: Any = getattr(importlib.import_module(module_name), attribute)
    command: Command
    if isinstance(target, typer.Typer):
        command = typer.main.get_group(target)
    else:
        single = typer.Typer(add_completion=False)
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """A group whose commands are imported on first use."""

    _listing = False

    def list_commands(self, ctx: Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)  # one registered on the app itself
        if self._listing and cmd_name not in self.commands:
            # the help's command list comes from the table: listing commands imports none of them
            return TyperCommand(cmd_name, short_help=COMMANDS[cmd_name].short_help)
        if cmd_name not in self.commands:
            self.commands[cmd_name] = finish(load(cmd_name), cmd_name, ctx)
        return self.commands[cmd_name]

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        # `payouts COMMAND --help` before the root's own options are converted (typer loads
        # pydantic to convert any option)
        if args and args[0] in COMMANDS:
            ctx.meta[ARGS_KEY] = list(args)
            command = self.get_command(ctx, args[0])
            if command is not None:
                _help_at_once(command, args[0], args[1:], ctx)
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx: Context, args: list[str]) -> Any:
        # the root callback runs after this: it reads no settings for a --help
        ctx.meta[ARGS_KEY] = list(args)
        name, command, rest = super().resolve_command(ctx, args)
        if name is not None and command is not None:
            _help_at_once(command, name, rest, ctx)
        return name, command, rest

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        self._listing = True
        try:
            _plain_types(self, ctx)
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


_HELP_OPTIONS = ("--help", "-h")


def _help_at_once(command: Command, name: str, args: list[str], parent: Context) -> None:
    """`payouts COMMAND [SUBCOMMAND] --help`: print the help and exit before the command's own
    parsing, which would build a converter for each of its parameters (typer loads pydantic
    for that). Anything else (arguments before the --help) goes the usual way."""
    ctx = command.context_class(command, info_name=name, parent=parent)
    while isinstance(command, TyperGroup) and args and args[0] not in _HELP_OPTIONS:
        sub = command.commands.get(args[0])
        if sub is None:
            return
        name, command, args = args[0], sub, args[1:]
        ctx = command.context_class(command, info_name=name, parent=ctx)
    if args and args[0] in _HELP_OPTIONS:
        typer.echo(command.get_help(ctx), color=ctx.color)
        ctx.exit()
