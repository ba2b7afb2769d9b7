from __future__ import annotations

import pytest
from cryptography.fernet import Fernet, MultiFernet

from bridge.config import load_settings
from bridge.crypto import TokenBox, UndecryptableToken, generate_key
from bridge.errors import FatalError

KEY_A = generate_key()
KEY_B = generate_key()
SECRET = "whop_access_token_1234567890"


def box(*keys: str) -> TokenBox:
    return TokenBox(MultiFernet([Fernet(k) for k in keys]))


def test_round_trip_and_ciphertext_hides_the_plaintext() -> None:
    b = box(KEY_A)
    enc = b.encrypt(SECRET)
    assert SECRET not in enc
    assert enc != b.encrypt(SECRET)  # random IV: equal plaintexts do not look equal
    assert b.decrypt(enc) == SECRET
    assert b.decrypt(b.encrypt("ünïcødé ✓")) == "ünïcødé ✓"


def test_generate_key_is_a_fernet_key_accepted_by_settings() -> None:
    key = generate_key()
    Fernet(key)
    settings = load_settings(BRIDGE_SECRET_KEY=key)
    assert TokenBox(settings.fernet).decrypt(box(key).encrypt("x")) == "x"


def test_wrong_key_raises_a_clear_fatal_error_without_the_token() -> None:
    enc = box(KEY_A).encrypt(SECRET)
    with pytest.raises(UndecryptableToken) as info:
        box(KEY_B).decrypt(enc)
    assert isinstance(info.value, FatalError)
    message = str(info.value)
    assert message == "stored token cannot be decrypted with BRIDGE_SECRET_KEY; was a key removed?"
    assert enc not in message and SECRET not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize("garbage", ["", "not-a-token", "gAAAAA" + "x" * 80, "ünï"])
def test_garbage_is_undecryptable(garbage: str) -> None:
    with pytest.raises(UndecryptableToken):
        box(KEY_A).decrypt(garbage)
    with pytest.raises(UndecryptableToken):
        box(KEY_A).rotate(garbage)


def test_key_rotation_via_settings() -> None:
    enc_a = box(KEY_A).encrypt(SECRET)
    # The operator puts a new key first: old ciphertexts still decrypt.
    rotated_box = TokenBox(load_settings(BRIDGE_SECRET_KEY=f"{KEY_B},{KEY_A}").fernet)
    assert rotated_box.decrypt(enc_a) == SECRET
    enc_b = rotated_box.rotate(enc_a)
    assert enc_b != enc_a
    assert box(KEY_B).decrypt(enc_b) == SECRET  # now under B alone
    with pytest.raises(UndecryptableToken):
        box(KEY_A).decrypt(enc_b)


def test_repr_hides_keys() -> None:
    assert KEY_A not in repr(box(KEY_A))
