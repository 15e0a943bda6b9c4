"""The network names the service knows, against stellar_sdk's own constants."""

from stellar_sdk import Network

from payouts.stellar.network import PASSPHRASES, SANDBOX_NETWORK_PASSPHRASE


def test_the_written_out_passphrases_are_the_sdks():
    assert PASSPHRASES["main"] == Network.PUBLIC_NETWORK_PASSPHRASE
    assert PASSPHRASES["test"] == Network.TESTNET_NETWORK_PASSPHRASE
    # the sandbox is a network of its own: never one of Stellar's
    assert PASSPHRASES["dev"] == SANDBOX_NETWORK_PASSPHRASE
    assert SANDBOX_NETWORK_PASSPHRASE not in (Network.PUBLIC_NETWORK_PASSPHRASE, Network.TESTNET_NETWORK_PASSPHRASE)
