"""Identity keys: kubo's Identity.PrivKey format and peer IDs, checked against independent code."""

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from multiformats import multihash
from multiformats.multibase import base58btc

from node.p2p.identity import IdentityError, generate_identity, load_keypair, peer_id_of


def _protobuf(key_type: int, data: bytes) -> bytes:
    """Hand-encoded libp2p key protobuf: field 1 varint Type, field 2 bytes Data."""
    return bytes([0x08, key_type, 0x12, len(data)]) + data


def _expected_peer_id(public: bytes) -> str:
    pub_pb = _protobuf(1, public)
    mh = multihash.wrap(pub_pb, "identity")
    return base58btc.encode(bytes(mh))


def test_generated_identity_round_trips() -> None:
    peer_id, priv = generate_identity()
    assert peer_id.startswith("12D3KooW")
    kp = load_keypair(priv)
    assert peer_id_of(kp) == peer_id
    raw = base64.b64decode(priv)
    assert raw[:4] == bytes([0x08, 0x01, 0x12, 0x40])  # Ed25519, 64 bytes of data
    assert raw[4 + 32 :] == kp.public_key.to_bytes()


def test_two_identities_differ() -> None:
    assert generate_identity()[0] != generate_identity()[0]


def test_kubo_key_matches_independent_derivation() -> None:
    seed = bytes(range(32))
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    priv_b64 = base64.b64encode(_protobuf(1, seed + public)).decode()
    kp = load_keypair(priv_b64)
    assert kp.public_key.to_bytes() == public
    assert peer_id_of(kp) == _expected_peer_id(public)
    # the key signs like any Ed25519 key with that seed
    assert kp.private_key.sign(b"pinion") == Ed25519PrivateKey.from_private_bytes(seed).sign(b"pinion")
    # the bare 32-byte seed form is accepted too
    assert peer_id_of(load_keypair(base64.b64encode(_protobuf(1, seed)).decode())) == peer_id_of(kp)


@pytest.mark.parametrize(
    "bad, message",
    [
        ("", "empty"),
        ("not base64!!", "base64"),
        (base64.b64encode(b"\xff\xff\xff").decode(), "protobuf"),
        (base64.b64encode(_protobuf(0, b"x" * 64)).decode(), "not supported"),
        (base64.b64encode(_protobuf(1, b"x" * 10)).decode(), "10 bytes"),
        (base64.b64encode(_protobuf(1, bytes(32) + bytes(32))).decode(), "does not match"),
        (base64.b64encode(bytes([0x08, 0x01])).decode(), "lacks"),
    ],
)
def test_bad_keys_are_refused(bad: str, message: str) -> None:
    with pytest.raises(IdentityError, match=message):
        load_keypair(bad)


def test_keys_we_write_agree_with_py_libp2p() -> None:
    """Our hand-made protobuf and peer ID match py-libp2p's own, both ways."""
    from libp2p.crypto.ed25519 import Ed25519PrivateKey as Libp2pEd25519
    from libp2p.crypto.pb import crypto_pb2
    from libp2p.crypto.serialization import deserialize_private_key
    from libp2p.peer.id import ID

    from node.p2p.identity import public_key_b64

    # a key we wrote: py-libp2p's protobuf parses it and its seed gives the same public key and peer ID
    peer_id, priv = generate_identity()
    msg = crypto_pb2.PrivateKey.FromString(base64.b64decode(priv))
    assert msg.key_type == crypto_pb2.KeyType.Ed25519
    theirs = Libp2pEd25519.from_bytes(msg.data[:32])
    assert theirs.get_public_key().to_bytes() == msg.data[32:]
    assert ID.from_pubkey(theirs.get_public_key()).to_base58() == peer_id
    assert base64.b64decode(public_key_b64(priv)) == theirs.get_public_key().serialize()
    # the KeyPair we hand to the hosts signs as py-libp2p's key from the same seed
    kp = load_keypair(priv)
    assert kp.private_key.sign(b"pinion") == theirs.sign(b"pinion")
    assert kp.private_key.serialize() == theirs.serialize()
    # a key py-libp2p wrote (the bare 32-byte seed form) loads here with py-libp2p's peer ID
    written = Libp2pEd25519.new()
    written_b64 = base64.b64encode(written.serialize()).decode()
    assert deserialize_private_key(written.serialize()).to_bytes() == written.to_bytes()
    assert peer_id_of(load_keypair(written_b64)) == ID.from_pubkey(written.get_public_key()).to_base58()
    assert base64.b64decode(public_key_b64(written_b64)) == written.get_public_key().serialize()
