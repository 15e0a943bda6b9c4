"""`payouts sandbox init`: the accounts a rehearsal needs, created through the sandbox's own API.

An issuer for TFT, a treasury funded with TFT and XLM, a payout (hot) account with a TFT
trustline, channel accounts holding XLM for fees, and farmers with TFT trustlines (the last
`without_trustline` of them without one, to exercise held payments). Every account is created
by real signed transactions from the sandbox's root account, whose key derives from the
network passphrase. Keys and secrets go to a JSON file readable by its owner only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
from stellar_sdk import Account as SdkAccount
from stellar_sdk import Asset, Keypair, TransactionBuilder

from payouts.files import write_atomic
from payouts.sandbox.entries import format_amount
from payouts.sandbox.network import BASE_FEE_STROOPS, MAX_OPS_PER_TX, root_keypair
from payouts.stellar.network import TFT_CODE
from payouts.tls import tls_context

ACCOUNTS_FORMAT = "tft-payouts-sandbox-accounts/1"
#: Starting XLM per role, in stroops.
TREASURY_XLM_STROOPS = 10_000 * 10**7
PAYOUT_XLM_STROOPS = 1_000 * 10**7
CHANNEL_XLM_STROOPS = 100 * 10**7
FARMER_XLM_STROOPS = 10 * 10**7
ISSUER_XLM_STROOPS = 100 * 10**7
DEFAULT_TREASURY_TFT_UNITS = 10_000_000 * 10**7
#: Fee bid per operation for set-up transactions: well above the base fee, so set-up lands
#: even on a busy sandbox.
SETUP_FEE_STROOPS = BASE_FEE_STROOPS * 10


class SandboxInitError(RuntimeError):
    """A set-up transaction failed or did not land; the message names which."""


@dataclass(frozen=True)
class SandboxAccounts:
    path: Path
    document: dict


def _keys(keypair: Keypair) -> dict:
    return {"public_key": keypair.public_key, "secret": keypair.secret}


def init_sandbox(
    horizon_url: str,
    out_path: Path,
    *,
    farmers: int = 10,
    without_trustline: int = 0,
    channels: int = 0,
    treasury_tft_units: int = DEFAULT_TREASURY_TFT_UNITS,
    treasury_signers: int = 1,
    threshold: int = 1,
    timeout_s: float = 120.0,
) -> SandboxAccounts:
    """Create the accounts on the sandbox at `horizon_url` and write their keys to `out_path`
    (mode 0600). Returns the document written (it holds secrets: never print it).

    With `treasury_signers` N > 1 the treasury becomes an N-signer multisig account (its own
    key and N-1 more, weight 1 each) whose low, medium and high thresholds are `threshold`."""
    if without_trustline > farmers:
        raise ValueError("without_trustline cannot exceed farmers")
    if not 1 <= treasury_signers <= 20:
        raise ValueError("treasury signers must be between 1 and 20 (Stellar allows 20 per account)")
    if not 1 <= threshold <= treasury_signers:
        raise ValueError(f"threshold must be between 1 and the number of treasury signers ({treasury_signers})")
    cosigners = [Keypair.random() for _ in range(treasury_signers - 1)]
    with httpx.Client(base_url=horizon_url.rstrip("/"), timeout=30.0, verify=tls_context()) as client:
        passphrase = client.get("/").raise_for_status().json()["network_passphrase"]
        root = root_keypair(passphrase)
        issuer, treasury, payout = Keypair.random(), Keypair.random(), Keypair.random()
        channel_keys = [Keypair.random() for _ in range(channels)]
        farmer_keys = [Keypair.random() for _ in range(farmers)]
        tft = Asset(TFT_CODE, issuer.public_key)

        creations = [(issuer, ISSUER_XLM_STROOPS), (treasury, TREASURY_XLM_STROOPS), (payout, PAYOUT_XLM_STROOPS)]
        creations += [(k, CHANNEL_XLM_STROOPS) for k in channel_keys]
        creations += [(k, FARMER_XLM_STROOPS) for k in farmer_keys]
        root_seq = int(client.get(f"/accounts/{root.public_key}").raise_for_status().json()["sequence"])
        envelopes = []
        for start in range(0, len(creations), MAX_OPS_PER_TX):
            builder = TransactionBuilder(SdkAccount(root.public_key, root_seq), passphrase, base_fee=SETUP_FEE_STROOPS)
            for keypair, stroops in creations[start : start + MAX_OPS_PER_TX]:
                builder.append_create_account_op(keypair.public_key, format_amount(stroops))
            tx = builder.set_timeout(int(timeout_s) + 60).build()
            tx.sign(root)
            root_seq = tx.transaction.sequence  # the builder has taken the next number
            envelopes.append(tx.to_xdr())
        created = _submit_all(client, envelopes, timeout_s, what="create accounts")
        # Which ledger created each account fixes its first sequence number (ledger << 32).
        ledger_of: dict[str, int] = {}
        for index, (keypair, _) in enumerate(creations):
            ledger_of[keypair.public_key] = created[index // MAX_OPS_PER_TX]["ledger"]

        trusting = [treasury, payout] + farmer_keys[: farmers - without_trustline]
        trust_envelopes = []
        for keypair in trusting:
            account = SdkAccount(keypair.public_key, ledger_of[keypair.public_key] << 32)
            tx = (
                TransactionBuilder(account, passphrase, base_fee=SETUP_FEE_STROOPS)
                .append_change_trust_op(tft)
                .set_timeout(int(timeout_s) + 60)
                .build()
            )
            tx.sign(keypair)
            trust_envelopes.append(tx.to_xdr())
        _submit_all(client, trust_envelopes, timeout_s, what="add TFT trustlines")

        if treasury_tft_units > 0:
            account = SdkAccount(issuer.public_key, ledger_of[issuer.public_key] << 32)
            tx = (
                TransactionBuilder(account, passphrase, base_fee=SETUP_FEE_STROOPS)
                .append_payment_op(treasury.public_key, tft, format_amount(treasury_tft_units))
                .set_timeout(int(timeout_s) + 60)
                .build()
            )
            tx.sign(issuer)
            _submit_all(client, [tx.to_xdr()], timeout_s, what="fund the treasury with TFT")

        if cosigners or threshold > 1:
            sequence = int(client.get(f"/accounts/{treasury.public_key}").raise_for_status().json()["sequence"])
            builder = TransactionBuilder(
                SdkAccount(treasury.public_key, sequence), passphrase, base_fee=SETUP_FEE_STROOPS
            )
            for cosigner in cosigners:
                builder.append_ed25519_public_key_signer(cosigner.public_key, 1)
            builder.append_set_options_op(
                master_weight=1, low_threshold=threshold, med_threshold=threshold, high_threshold=threshold
            )
            tx = builder.set_timeout(int(timeout_s) + 60).build()
            tx.sign(treasury)
            _submit_all(client, [tx.to_xdr()], timeout_s, what="make the treasury a multisig account")

    document = {
        "format": ACCOUNTS_FORMAT,
        "horizon_url": horizon_url,
        "network_passphrase": passphrase,
        "asset": {"code": TFT_CODE, "issuer": issuer.public_key},
        "treasury_tft_units": treasury_tft_units,
        "issuer": _keys(issuer),
        "treasury": _keys(treasury) | {"threshold": threshold},
        #: the treasury's other signers (its own key is the first): operators' keys in a rehearsal
        "treasury_signers": [_keys(k) for k in cosigners],
        "payout": _keys(payout),
        "channels": [_keys(k) for k in channel_keys],
        "farmers": [_keys(k) | {"trustline": i < farmers - without_trustline} for i, k in enumerate(farmer_keys)],
    }
    write_private_json(out_path, document)
    return SandboxAccounts(out_path, document)


def write_private_json(path: Path, document: dict) -> None:
    """Write JSON readable by the owner only: the file is created 0600 and renamed into place,
    so no other user ever sees the secrets, even for a moment."""
    write_atomic(path, orjson.dumps(document, option=orjson.OPT_INDENT_2), private=True)


def _submit_all(client: httpx.Client, envelopes: list[str], timeout_s: float, *, what: str) -> list[dict]:
    """Queue every envelope, then wait until each one is in a ledger; in submission order."""
    hashes = []
    for envelope in envelopes:
        reply = client.post("/transactions_async", data={"tx": envelope})
        body = reply.json()
        if reply.status_code not in (201, 409):
            raise SandboxInitError(f"{what}: submission refused ({reply.status_code} {body.get('tx_status')})")
        hashes.append(body["hash"])
    deadline = time.monotonic() + timeout_s
    records: dict[str, dict] = {}
    while len(records) < len(hashes):
        for hash_hex in hashes:
            if hash_hex in records:
                continue
            reply = client.get(f"/transactions/{hash_hex}")
            if reply.status_code == 200:
                record = reply.json()
                if not record["successful"]:
                    raise SandboxInitError(f"{what}: transaction {hash_hex} failed")
                records[hash_hex] = record
        if len(records) < len(hashes):
            if time.monotonic() > deadline:
                raise SandboxInitError(f"{what}: {len(hashes) - len(records)} transactions did not land")
            time.sleep(0.05)
    return [records[h] for h in hashes]


def fund_payout_account(horizon_url: str, document: dict, amount_units: int, *, timeout_s: float = 60.0) -> str:
    """Single-tier funding on the sandbox: the treasury pays `amount_units` TFT to the payout
    account. Returns the transaction hash."""
    treasury = Keypair.from_secret(document["treasury"]["secret"])
    tft = Asset(document["asset"]["code"], document["asset"]["issuer"])
    with httpx.Client(base_url=horizon_url.rstrip("/"), timeout=30.0, verify=tls_context()) as client:
        sequence = int(client.get(f"/accounts/{treasury.public_key}").raise_for_status().json()["sequence"])
        tx = (
            TransactionBuilder(
                SdkAccount(treasury.public_key, sequence), document["network_passphrase"], base_fee=SETUP_FEE_STROOPS
            )
            .append_payment_op(document["payout"]["public_key"], tft, format_amount(amount_units))
            .set_timeout(int(timeout_s) + 60)
            .build()
        )
        tx.sign(treasury)
        # a multisig treasury: its own key and enough of the other signers to meet the threshold
        threshold = int(document["treasury"].get("threshold", 1))
        for cosigner in document.get("treasury_signers", [])[: threshold - 1]:
            tx.sign(Keypair.from_secret(cosigner["secret"]))
        _submit_all(client, [tx.to_xdr()], timeout_s, what="fund the payout account")
        return tx.hash_hex()
