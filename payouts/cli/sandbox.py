"""`payouts sandbox`: run the sandbox Stellar network and create the accounts a rehearsal needs."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from payouts.cli.console import abort, err_console
from payouts.money import parse_tft
from payouts.sandbox.network import SANDBOX_NETWORK_PASSPHRASE

app = typer.Typer(
    help=(
        "The sandbox Stellar network: a loopback Horizon subset that validates real signed "
        f"transactions (network passphrase {SANDBOX_NETWORK_PASSPHRASE!r})."
    ),
    no_args_is_help=True,
)

_FAULTS_HELP = (
    "Faults by rate, comma-separated: 504_after_apply=R, 504_without_apply=R, "
    "drop_after_apply=R, delay=R:LEDGERS, congestion=R, restart=R "
    "(e.g. '504_after_apply=0.1,drop_after_apply=0.05,delay=0.1:3,congestion=0.05'). "
    "504_after_apply: lands, answers 504. 504_without_apply: answers 504, never lands. "
    "drop_after_apply: lands, connection closed. delay: lands LEDGERS later. "
    "congestion: tx_insufficient_fee. restart: after a ledger close, reload saved state. "
    "land_during_lookup=R: a lookup by hash of a queued transaction answers 404 while the "
    "ledger including it closes. "
    "lag=SECONDS: a lagging replica, reads SECONDS behind the chain and every synchronous "
    "submission answered 504 after it lands."
)


@app.command("up")
def up(
    port: Annotated[int, typer.Option(help="Loopback port (0 picks a free one).")] = 8000,
    state: Annotated[
        Path | None, typer.Option("--state", help="Folder for the ledger state (kept across restarts).")
    ] = None,
    ledger_close: Annotated[
        float, typer.Option("--ledger-close", min=0.01, help="Seconds between ledger closes.")
    ] = 5.0,
    ops_per_ledger: Annotated[int, typer.Option(min=1, help="Operations per ledger (capacity).")] = 1000,
    faults: Annotated[str, typer.Option(help=_FAULTS_HELP)] = "",
    seed: Annotated[int | None, typer.Option(help="Seed of the fault generator.")] = None,
    submission_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds a synchronous POST /transactions waits before 504.")
    ] = 30.0,
) -> None:
    """Serve the sandbox on 127.0.0.1 until SIGINT or SIGTERM; state is saved on every ledger."""
    from payouts.sandbox.faults import FaultSpec, FaultSpecError
    from payouts.sandbox.server import SandboxConfig, SandboxServer

    try:
        spec = FaultSpec.parse(faults)
    except FaultSpecError as exc:
        abort(f"--faults: {exc}")
    server = SandboxServer(
        SandboxConfig(
            port=port,
            state_dir=state,
            ledger_close_s=ledger_close,
            ops_per_ledger=ops_per_ledger,
            faults=spec,
            seed=seed,
            submission_timeout_s=submission_timeout,
        )
    )
    try:
        server.start()
    except OSError as exc:
        abort(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}")
    except ValueError as exc:
        abort(str(exc))
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    err_console.print(f"sandbox Horizon at {server.url}")
    err_console.print(f"network passphrase: {SANDBOX_NETWORK_PASSPHRASE}")
    if spec.rates:
        err_console.print(f"faults: {spec} (seed {seed})")
    while not stop.wait(0.5):
        pass
    server.stop()
    err_console.print(f"stopped at ledger {server.chain.latest.sequence}")


@app.command("init")
def init(
    horizon: Annotated[str, typer.Option("--horizon", help="The sandbox's URL.")],
    out: Annotated[Path, typer.Option("--out", help="JSON file for keys and secrets (created 0600).")],
    farmers: Annotated[int, typer.Option(min=0, help="Farmer accounts to create.")] = 10,
    without_trustline: Annotated[int, typer.Option(min=0, help="How many farmers get no TFT trustline.")] = 0,
    channels: Annotated[int, typer.Option(min=0, help="Channel accounts (XLM only, for fees).")] = 0,
    treasury_tft: Annotated[str, typer.Option(help="TFT issued to the treasury.")] = "10000000",
    treasury_signers: Annotated[
        int, typer.Option(min=1, max=20, help="Signers of the treasury (a multisig treasury when above 1).")
    ] = 1,
    threshold: Annotated[
        int, typer.Option(min=1, help="Signatures the treasury needs (at most --treasury-signers).")
    ] = 1,
) -> None:
    """Create an issuer, a treasury, a payout account, channels and farmers on the sandbox;
    keys go to --out only, never to the terminal.

    Example (a 3-signer treasury needing 2 signatures, then a month for its farmers):

    \b
      payouts sandbox init --horizon http://127.0.0.1:8000 --out accounts.json --treasury-signers 3 --threshold 2
      payouts synth --accounts accounts.json --out 2025-11.json
    """
    from payouts.sandbox.accounts import SandboxInitError, init_sandbox

    if without_trustline > farmers:
        abort("--without-trustline cannot exceed --farmers")
    if threshold > treasury_signers:
        abort(f"--threshold {threshold} exceeds --treasury-signers {treasury_signers}", code=2)
    try:
        treasury_tft_units = parse_tft(treasury_tft)
    except ValueError as exc:
        abort(f"--treasury-tft: {exc}")
    try:
        result = init_sandbox(
            horizon,
            out,
            farmers=farmers,
            without_trustline=without_trustline,
            channels=channels,
            treasury_tft_units=treasury_tft_units,
            treasury_signers=treasury_signers,
            threshold=threshold,
        )
    except SandboxInitError as exc:
        abort(str(exc))
    except OSError as exc:
        abort(f"cannot reach the sandbox at {horizon}: {exc}")
    doc = result.document
    err_console.print(
        f"created issuer {doc['asset']['issuer']}, treasury, payout, {channels} channels, "
        f"{farmers} farmers ({without_trustline} without TFT trustline); keys in {out}"
    )
    if treasury_signers > 1:
        err_console.print(
            f"treasury {doc['treasury']['public_key']}: {treasury_signers} signers, {threshold} needed "
            f"(the other signers' keys are under treasury_signers in {out})"
        )


__all__ = ["app"]
