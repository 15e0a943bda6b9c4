"""A value shaped like a Stellar secret seed is never echoed: not by settings validation, key
file errors, CLI arguments, exceptions or log lines. Every seed here is generated at run time."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from stellar_sdk import Keypair
from typer.testing import CliRunner

from config.logging import configure_logging
from config.settings import SettingsError, load_settings
from payouts.cli.main import app
from payouts.redact import has_seed, redact
from payouts.stellar.keys import KeyFileError, SigningKeys, load_keypair

#: every setting that takes a key, a path or a URL
KEY_AND_PATH_SETTINGS = [
    "APPROVERS",
    "PAYOUT_KEY_FILE",
    "CHANNEL_KEY_FILES",
    "STELLAR_ACCOUNTS_FILE",
    "TREASURY_ACCOUNT",
    "TFT_ISSUER",
    "STATE_DIR",
    "EXPORT_DIR",
    "SNAPSHOT_DROP_FOLDER",
    "DATABASE_URL",
    "BROKER_URL",
    "HORIZON_URL",
    "GRAPHQL_URL",
    "GRIDPROXY_URL",
    "ALERT_WEBHOOK_URL",
]


@pytest.fixture
def seed() -> str:
    return Keypair.random().secret


def _shapes(seed: str) -> list[str]:
    """The seed alone, inside a path, and in a list."""
    return [seed, f"/etc/payouts/{seed}", f"{Keypair.random().public_key},{seed}"]


def _assert_absent(seed: str, *texts: str) -> None:
    for text in texts:
        assert seed not in text
        assert seed[1:30] not in text and seed[-25:] not in text  # nor a shortened echo of it


@pytest.mark.parametrize("setting", KEY_AND_PATH_SETTINGS)
def test_a_seed_in_any_setting_is_refused_without_echo(monkeypatch, seed, setting):
    for value in _shapes(seed):
        monkeypatch.setenv(f"PAYOUTS_{setting}", value)
        with pytest.raises(SettingsError) as caught:
            load_settings()
        message = str(caught.value)
        assert f"PAYOUTS_{setting}" in message and "secret seed" in message
        _assert_absent(seed, message, repr(caught.value))
        assert caught.value.__cause__ is None and caught.value.__suppress_context__

        result = CliRunner().invoke(app, ["runs"])
        assert result.exit_code == 2
        assert f"PAYOUTS_{setting}" in result.stderr
        _assert_absent(seed, result.stdout, result.stderr, repr(result.exception))


def test_a_seed_in_the_env_file_is_refused_without_echo(monkeypatch, tmp_path, seed):
    env_file = tmp_path / "payouts.env"
    env_file.write_text(f"PAYOUTS_APPROVERS={seed}\nPAYOUTS_PAYOUT_KEY_FILE={seed}\n")
    monkeypatch.setenv("PAYOUTS_ENV_FILE", str(env_file))
    result = CliRunner().invoke(app, ["runs"])
    assert result.exit_code == 2
    assert "PAYOUTS_APPROVERS" in result.stderr and "PAYOUTS_PAYOUT_KEY_FILE" in result.stderr
    _assert_absent(seed, result.stdout, result.stderr)


def test_a_public_key_that_is_wrong_is_named_by_its_setting_but_no_value_is_shown(monkeypatch, seed):
    # no setting's value is repeated in an error: a value that is not a seed may still be a secret
    monkeypatch.setenv("PAYOUTS_APPROVERS", f"GNOTAKEY,{seed}")
    with pytest.raises(SettingsError, match="PAYOUTS_APPROVERS") as caught:
        load_settings()
    assert "GNOTAKEY" not in str(caught.value) and seed not in str(caught.value)


def _write_key(path: Path) -> Path:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(Keypair.random().secret + "\n")
    return path


#: every command argument that takes a key file or another path (a seed pasted in its place)
def _commands(seed: str, tmp: Path) -> list[list[str]]:
    key = str(_write_key(tmp / "k.seed"))
    return [
        ["approve", "1", "--key-file", seed],
        ["approve", "1", "--key-file", f"/keys/{seed}"],
        ["approve", "1", "--key-file", key, "--reason", seed],
        ["reject", "1", "--key-file", seed, "--reason", "no"],
        ["funding", "sign", str(tmp / "f.json"), "--key-file", seed],
        ["funding", "export", "1", "--out", seed],
        ["funding", "submit", seed],
        ["db", "backup", "--out", seed],
        ["calculate", "--snapshot", seed],
        ["receipt", "verify", seed],
        ["snapshot", "--out", seed],
        ["synth", "--out", seed],
        ["export", "1", "--out", seed],
        ["publish", "--out", seed],
        ["farms", "import", seed],
        ["nodes", "import", seed],
        ["sandbox", "init", "--out", seed],
        ["sandbox", "serve", "--state", seed],
        ["demo", "--dir", seed],
        [seed],
        [f"--{seed}"],
    ]


def test_a_seed_in_any_cli_argument_is_refused_without_echo(tmp_path, seed):
    for args in _commands(seed, tmp_path):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, args
        assert "secret seed" in result.stderr, args
        _assert_absent(seed, result.stdout, result.stderr, repr(result.exception))


def test_a_seed_in_cli_arguments_never_reaches_a_real_process_output(tmp_path, seed):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYOUTS_")}
    env["PAYOUTS_STATE_DIR"] = str(tmp_path / "state")
    for args, extra_env in [
        (["approve", "1", "--key-file", seed], {}),
        (["funding", "sign", "f.json", "--key-file", f"/keys/{seed}"], {}),
        (["runs"], {"PAYOUTS_APPROVERS": seed}),
        (["runs"], {"PAYOUTS_PAYOUT_KEY_FILE": seed}),
        (["pay", "1"], {"PAYOUTS_CHANNEL_KEY_FILES": f"/k/a,{seed}"}),
    ]:
        process = subprocess.run(
            [sys.executable, "-m", "payouts.cli.main", *args],
            env={**env, **extra_env},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert process.returncode == 2, (args, process.stderr[-500:])
        assert "secret seed" in process.stderr
        assert "Traceback" not in process.stderr
        _assert_absent(seed, process.stdout, process.stderr)


def test_key_file_errors_never_quote_a_seed(tmp_path, seed):
    for path in (Path(seed), tmp_path / seed, tmp_path / f"x{seed}.key"):
        with pytest.raises(KeyFileError) as caught:
            load_keypair(path)
        _assert_absent(seed, str(caught.value))
        with pytest.raises(KeyFileError) as caught:
            SigningKeys.from_accounts_file(path)
        _assert_absent(seed, str(caught.value))
    # a message built elsewhere around a seed is blanked out too
    _assert_absent(seed, str(KeyFileError(f"no such file {seed}")))


def test_an_exception_quoting_a_seed_is_shown_redacted(seed):
    """A command whose unexpected error happens to carry a seed shows it blanked out, with no
    traceback."""

    def quoting() -> None:
        raise RuntimeError(f"cannot use {seed}")

    app.command("quoting-test")(quoting)
    try:
        result = CliRunner().invoke(app, ["quoting-test"])
    finally:
        app.registered_commands.pop()
    assert result.exit_code == 1
    assert "RuntimeError: cannot use S**redacted" in result.stderr
    _assert_absent(seed, result.stdout, result.stderr, repr(result.exception))


def test_log_lines_never_carry_a_seed(seed):
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    log = structlog.get_logger()
    log.info("key.path", path=f"/keys/{seed}", nested={"list": [seed]}, note=f"pasted {seed}")
    try:
        raise ValueError(f"bad key {seed}")
    except ValueError:
        log.exception("key.failed")
    console = io.StringIO()
    configure_logging("console", "INFO", stream=console)
    structlog.get_logger().warning(f"event {seed}", where=seed)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(records) == 2 and "redacted" in records[0]["path"]
    _assert_absent(seed, stream.getvalue(), console.getvalue())


def test_library_log_lines_never_carry_a_seed(seed):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        configure_logging("json", "INFO")
        logging.getLogger("alembic.test").warning("opening %s", f"/keys/{seed}")
    finally:
        root.removeHandler(handler)
    assert "opening /keys/S**redacted" in stream.getvalue()
    _assert_absent(seed, stream.getvalue())


def test_redact_finds_seeds_anywhere_and_nothing_else(seed):
    assert has_seed(seed) and has_seed(f"/a/b{seed}.txt") and not has_seed(Keypair.random().public_key)
    assert seed not in redact(f"x{seed}y and {seed}")
    envelope = "AAAAAgAAAAB" + "q" * 200  # base64 XDR is not upper case throughout
    assert redact(envelope) == envelope
