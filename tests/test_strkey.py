"""The light public key check answers as stellar_sdk's for keys and near-keys of every kind."""

from __future__ import annotations

import random

from stellar_sdk import Keypair, StrKey

from payouts.strkey import is_valid_public_key


def _candidates() -> list[str]:
    rng = random.Random(7)
    # keys from a seeded generator: every test process collects the same cases
    keys = [Keypair.from_raw_ed25519_seed(rng.randbytes(32)) for _ in range(40)]
    texts: list[str] = []
    for keypair in keys:
        public, secret = keypair.public_key, keypair.secret
        texts += [public, secret, public.lower(), public[:-1], public + "A", public + "=", " " + public]
        texts.append(StrKey.encode_med25519_public_key(keypair.raw_public_key() + rng.randbytes(8)))
        texts.append(StrKey.encode_pre_auth_tx(rng.randbytes(32)))
        for _ in range(6):  # one character changed: checksum, version or padding bits break
            position = rng.randrange(len(public))
            texts.append(public[:position] + rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") + public[position + 1 :])
    texts += ["", "G", "GAAAA", "é" * 56, "G" * 56, "A" * 56, "GA" + "=" * 54, "\x00" * 56]
    return texts


_CASES = _candidates()


def test_same_answer_as_stellar_sdk():
    # one test over every case: the per-test setup cost more than the 600 checks themselves.
    # Mismatches are named by number, not by text: a case may be a secret seed.
    mismatches = [
        i for i, text in enumerate(_CASES) if is_valid_public_key(text) is not StrKey.is_valid_ed25519_public_key(text)
    ]
    assert len(_CASES) > 600
    assert mismatches == []


def test_real_keys_are_valid_and_near_keys_are_not():
    texts = _candidates()
    answers = [is_valid_public_key(text) for text in texts]
    assert any(answers) and not all(answers)
