"""Signed heads: every key format round-trips; a changed head or another key fails."""
import base64

import pytest

from ledger import signing


@pytest.fixture
def key():
    return signing.load_private_key(signing.generate_private_key_pem())


def test_a_signed_head_verifies_with_the_public_key_in_every_format(key, tmp_path):
    head = signing.sign_head(key, 7, "ab" * 32, "2026-11-22T21:05:03.123456Z")
    pem_file = tmp_path / "pub.pem"
    pem_file.write_text(signing.public_key_pem(key))
    for form in (signing.public_key_text(key), signing.public_key_pem(key), str(pem_file),
                 base64.b64decode(signing.public_key_text(key)).hex()):
        assert signing.verify_head(signing.load_public_key(form), head)
    assert head["key_id"] == signing.key_id(key.public_key())


def test_private_keys_load_from_pem_escaped_pem_file_and_seed(key, tmp_path):
    pem = signing.generate_private_key_pem()
    loaded = signing.load_private_key(pem)
    path = tmp_path / "k.pem"
    path.write_text(pem)
    from cryptography.hazmat.primitives import serialization
    seed = loaded.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    for form in (pem.replace("\n", "\\n"), str(path), base64.b64encode(seed).decode()):
        assert signing.public_key_text(signing.load_private_key(form)) == signing.public_key_text(loaded)
    with pytest.raises(ValueError):
        signing.load_private_key("not a key")


def test_a_changed_head_or_another_key_fails(key):
    head = signing.sign_head(key, 7, "ab" * 32, "2026-11-22T21:05:03.123456Z")
    public = key.public_key()
    assert not signing.verify_head(public, {**head, "hash": "cd" * 32})
    assert not signing.verify_head(public, {**head, "seq": 8})
    other = signing.load_private_key(signing.generate_private_key_pem()).public_key()
    assert not signing.verify_head(other, head)
    assert not signing.verify_head(public, {**head, "signature": "garbage!"})
