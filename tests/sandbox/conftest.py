"""Sandbox fixtures: a sandbox per test on a free port, an SDK client without retries (so a
test sees what the network answered), and a small helper to fund accounts and sign."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from stellar_sdk import Asset, Keypair, Server, TransactionBuilder, TransactionEnvelope
from stellar_sdk.client.requests_client import RequestsClient
from stellar_sdk.exceptions import BaseHorizonError

from payouts.sandbox import SANDBOX_NETWORK_PASSPHRASE, SandboxServer, root_keypair, running_sandbox

FEE = 100


@dataclass
class Net:
    """Drives a sandbox through stellar-sdk's `Server`, the way the product will."""

    sandbox: SandboxServer
    horizon: Server

    def builder(
        self, source: Keypair, *, base_fee: int = FEE, sequence: int | None = None, timeout_s: int | None = 300
    ) -> TransactionBuilder:
        account = self.horizon.load_account(source.public_key)
        if sequence is not None:
            account.sequence = sequence - 1
        builder = TransactionBuilder(account, SANDBOX_NETWORK_PASSPHRASE, base_fee=base_fee)
        if timeout_s is not None:
            builder.set_timeout(timeout_s)
        return builder

    def submit(self, envelope: TransactionEnvelope) -> dict:
        return self.horizon.submit_transaction(envelope, skip_memo_required_check=True)

    def fail(self, envelope: TransactionEnvelope) -> BaseHorizonError:
        with pytest.raises(BaseHorizonError) as caught:
            self.submit(envelope)
        return caught.value

    def signed(self, builder: TransactionBuilder, *signers: Keypair) -> TransactionEnvelope:
        envelope = builder.build()
        for signer in signers:
            envelope.sign(signer)
        return envelope

    def account(self, keypair: Keypair | str) -> dict:
        account_id = keypair if isinstance(keypair, str) else keypair.public_key
        return self.horizon.accounts().account_id(account_id).call()

    def fund(self, *keypairs: Keypair, xlm: str = "100") -> None:
        root = root_keypair()
        builder = self.builder(root)
        for keypair in keypairs:
            builder.append_create_account_op(keypair.public_key, xlm)
        self.submit(self.signed(builder, root))

    def new_accounts(self, count: int, xlm: str = "100") -> list[Keypair]:
        keypairs = [Keypair.random() for _ in range(count)]
        self.fund(*keypairs, xlm=xlm)
        return keypairs

    def issue(self, *holders: Keypair, code: str = "TFT", limit: str | None = None) -> tuple[Keypair, Asset]:
        issuer = self.new_accounts(1)[0]
        asset = Asset(code, issuer.public_key)
        for holder in holders:
            self.submit(self.signed(self.builder(holder).append_change_trust_op(asset, limit=limit), holder))
        return issuer, asset

    def native_balance(self, keypair: Keypair) -> str:
        return next(b["balance"] for b in self.account(keypair)["balances"] if b["asset_type"] == "native")

    def balance(self, keypair: Keypair, asset: Asset) -> str | None:
        for line in self.account(keypair)["balances"]:
            if line.get("asset_code") == asset.code and line.get("asset_issuer") == asset.issuer:
                return line["balance"]
        return None

    def sequence(self, keypair: Keypair) -> int:
        return int(self.account(keypair)["sequence"])


def make_net(sandbox: SandboxServer) -> Net:
    return Net(sandbox, Server(sandbox.url, client=RequestsClient(num_retries=0, request_timeout=10, post_timeout=15)))


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with running_sandbox(ledger_close_s=0.1, submission_timeout_s=5.0) as server:
        yield server


@pytest.fixture
def net(sandbox: SandboxServer) -> Net:
    return make_net(sandbox)
