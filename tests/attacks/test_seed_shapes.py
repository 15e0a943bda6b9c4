"""A secret seed is never echoed in whatever shape it arrives: lower-cased or mixed by an editor
or a shell, wrapped in whitespace or quotes, inside a longer string; in every setting and every
command-line argument that takes a key or a path. Every seed here is generated at run time."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest
from stellar_sdk import Account, Asset, Keypair, Network, TransactionBuilder
from typer.testing import CliRunner

from config.settings import SettingsError, load_settings
from payouts.cli.main import app
from payouts.redact import REDACTED, has_seed, redact
from payouts.stellar.keys import KeyFileError, load_keypair
from tests.config.test_no_secret_seed import KEY_AND_PATH_SETTINGS, _commands


@pytest.fixture
def seed() -> str:
    return Keypair.random().secret


def _mixed(seed: str) -> str:
    return "".join(c.lower() if i % 2 else c for i, c in enumerate(seed))


def _shapes(seed: str) -> list[str]:
    """The shapes a pasted seed takes; each must be caught."""
    lower = seed.lower()
    return [
        lower,
        _mixed(seed),
        seed.capitalize(),  # `S` kept, the rest lower-cased
        f"  {seed}\n",
        f"\t{lower} ",
        f'"{seed}"',
        f"SAB{seed}",  # preceded by base32 letters that start like one
        f"{seed}ABCDEF",
        f"key{seed}end",
        f"/etc/payouts/{lower}.key",
        f"{Keypair.random().public_key},{lower}",
    ]


def _assert_absent(seed: str, *texts: str) -> None:
    """Neither the seed nor a long part of it, in any case."""
    for text in texts:
        folded = text.upper()
        assert seed not in folded
        assert seed[1:30] not in folded and seed[-25:] not in folded


def test_redact_blanks_every_shape_of_a_seed_and_leaves_the_rest(seed):
    for shape in _shapes(seed):
        assert has_seed(shape), shape
        blanked = redact(shape)
        assert REDACTED in blanked
        _assert_absent(seed, blanked)
    # the text around the seed stays readable
    assert redact(f"key file /k/{seed.lower()}.key missing") == f"key file /k/{REDACTED}.key missing"


def test_base64_xdr_and_public_keys_are_not_taken_for_seeds():
    """Mixed-case base64 runs are blanked only when they read as a valid seed (checksum), so
    envelopes in logs and errors stay whole."""
    source = Keypair.random()
    for _ in range(50):
        envelope = (
            TransactionBuilder(Account(source.public_key, 1), Network.TESTNET_NETWORK_PASSPHRASE, 100)
            .append_payment_op(Keypair.random().public_key, Asset.native(), "1")
            .add_hash_memo(os.urandom(32))
            .set_timeout(60)
            .build()
        )
        envelope.sign(source)
        xdr = envelope.to_xdr()
        assert redact(xdr) == xdr and not has_seed(xdr)
        noise = base64.b32encode(os.urandom(700)).decode().lower()  # long lower-case base32 runs
        assert redact(noise) == noise
    for _ in range(50):
        public = Keypair.random().public_key
        assert not has_seed(public) and not has_seed(public.lower())


@pytest.mark.parametrize("setting", KEY_AND_PATH_SETTINGS)
def test_a_seed_in_any_shape_in_any_setting_is_refused_without_echo(monkeypatch, seed, setting):
    for value in _shapes(seed):
        monkeypatch.setenv(f"PAYOUTS_{setting}", value)
        with pytest.raises(SettingsError) as caught:
            load_settings()
        message = str(caught.value)
        assert f"PAYOUTS_{setting}" in message and "secret seed" in message, value
        _assert_absent(seed, message, repr(caught.value))


def _all_commands(seed: str, tmp) -> list[list[str]]:
    """tests/config's list, with the arguments it leaves out."""
    key = str(tmp / "k.seed")
    return _commands(seed, tmp) + [
        ["approvers", "sign", "--key-file", seed],
        ["approvers", "sign", "-k", seed],
        ["approve", "1", "-k", seed],
        ["keys", "new", "--out", seed],
        ["keys", "new", "-o", seed],
        ["web", "--site", seed],
        ["funding", "sign", seed, "--key-file", key],
        ["recover", "1", "--accept", f"ana, pasted {seed}"],
        ["export", "1", "-o", seed],
        ["snapshot", "-o", seed],
    ]


def test_a_seed_in_any_shape_in_any_cli_argument_is_refused_without_echo(tmp_path, seed):
    for number, shape in enumerate((seed, seed.lower(), _mixed(seed), f" {seed} ", f"x{seed.lower()}y")):
        (tmp_path / str(number)).mkdir()
        for args in _all_commands(shape, tmp_path / str(number)):
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 2, (args, result.stdout, result.stderr)
            assert "secret seed" in result.stderr, args
            _assert_absent(seed, result.stdout, result.stderr, repr(result.exception))


def test_key_file_errors_never_quote_a_seed_in_any_case(tmp_path, seed):
    for path in (tmp_path / seed.lower(), tmp_path / f"x{_mixed(seed)}.key", tmp_path / f" {seed} "):
        with pytest.raises(KeyFileError) as caught:
            load_keypair(path)
        _assert_absent(seed, str(caught.value))
    _assert_absent(seed, str(KeyFileError(f"no such file {seed.lower()}")))


def test_a_lower_case_seed_never_reaches_a_real_process_output(tmp_path, seed):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYOUTS_")}
    env["PAYOUTS_STATE_DIR"] = str(tmp_path / "state")
    for args, extra_env in [
        (["approve", "1", "--key-file", seed.lower()], {}),
        (["runs"], {"PAYOUTS_APPROVERS": f" {seed.lower()} "}),
        (["runs"], {"PAYOUTS_STATE_DIR": f"state/{_mixed(seed)}"}),
        (["runs"], {"PAYOUTS_ENV_FILE": f"/nowhere/{seed.lower()}"}),
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
        assert "Traceback" not in process.stderr
        _assert_absent(seed, process.stdout, process.stderr)
