"""Peer identities: Ed25519 keys in kubo's ``Identity.PrivKey`` format.

The private key is stored as base64 of the libp2p ``PrivateKey`` protobuf
(``Type = Ed25519``, ``Data`` = 32-byte seed followed by the 32-byte public
key, as go-libp2p and kubo write it). The peer ID is the identity multihash of
the public key protobuf, printed in base58btc (``12D3KooW...``). Both formats:
https://github.com/libp2p/specs/blob/master/peer-ids/peer-ids.md

Keys are made and decoded here with PyNaCl (the Ed25519 library py-libp2p itself
uses) and a few lines of protobuf, so that ``pinion init`` and the offline commands
do not import py-libp2p (about 0.7 s per process). Only ``load_keypair``, which the
daemon's hosts need, builds py-libp2p key objects.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

import libipld
from nacl.signing import SigningKey

from bitswap.protobuf import int_field, iter_fields, len_field

from ..errors import NodeError

if TYPE_CHECKING:
    from libp2p.crypto.keys import KeyPair

# KeyType enum of the key protobufs (peer-ids.md); only Ed25519 keys are supported.
_KEY_TYPES = {0: "RSA", 1: "Ed25519", 2: "Secp256k1", 3: "ECDSA"}
_ED25519 = 1
_IDENTITY_MULTIHASH = 0x00


class IdentityError(NodeError, ValueError):
    """A private key that cannot be decoded or is not an Ed25519 key."""


def _key_protobuf(data: bytes) -> bytes:
    """A libp2p ``PublicKey``/``PrivateKey`` protobuf of an Ed25519 key: Type (1), then Data (2)."""
    return int_field(1, _ED25519) + len_field(2, data)


def peer_id_from_public_key(public: bytes) -> str:
    """The base58btc peer ID of a 32-byte Ed25519 public key.

    The public key protobuf is 36 bytes (at most 42), so the peer ID is its identity multihash.
    """
    key_pb = _key_protobuf(public)
    multihash = bytes((_IDENTITY_MULTIHASH, len(key_pb))) + key_pb
    return libipld.encode_multibase("z", multihash)[1:]  # "z" is the base58btc multibase prefix


def generate_identity() -> tuple[str, str]:
    """Make a fresh Ed25519 identity: ``(peer ID string, base64 private key)``."""
    key = SigningKey.generate()
    seed, public = bytes(key), bytes(key.verify_key)
    return peer_id_from_public_key(public), base64.b64encode(_key_protobuf(seed + public)).decode("ascii")


def decode_private_key(privkey_b64: str) -> tuple[bytes, bytes]:
    """The ``(seed, public key)`` of a base64 libp2p-protobuf Ed25519 private key.

    Accepts the 64-byte form (seed + public key, checked for consistency) and
    the bare 32-byte seed. Raises IdentityError naming the problem otherwise.
    """
    if not isinstance(privkey_b64, str) or not privkey_b64.strip():
        raise IdentityError("private key is empty")
    try:
        raw = base64.b64decode(privkey_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise IdentityError("private key is not valid base64") from None
    key_type: int | None = None
    data: bytes | None = None
    try:
        for number, wire, value in iter_fields(memoryview(raw), 0, len(raw), "PrivateKey", IdentityError):
            if number == 1 and wire == 0:
                key_type = value
            elif number == 2 and wire == 2:
                data = raw[value[0] : value[1]]
    except IdentityError:
        raise IdentityError("private key is not a libp2p PrivateKey protobuf") from None
    if key_type is None or data is None:
        raise IdentityError("private key protobuf lacks its Type or Data field")
    if key_type != _ED25519:
        name = _KEY_TYPES.get(key_type, str(key_type))
        raise IdentityError(f"private key type {name} is not supported (Ed25519 only)")
    if len(data) not in (32, 64):
        raise IdentityError(f"Ed25519 private key data is {len(data)} bytes, expected 64 (or a 32-byte seed)")
    seed = data[:32]
    public = bytes(SigningKey(seed).verify_key)
    if len(data) == 64 and data[32:] != public:
        raise IdentityError("Ed25519 private key's embedded public key does not match its seed")
    return seed, public


def load_keypair(privkey_b64: str) -> KeyPair:
    """Decode a base64 libp2p-protobuf Ed25519 private key into a py-libp2p KeyPair (see decode_private_key)."""
    # Imported here, not at the top: py-libp2p takes ~0.7 s to import and only the daemon's hosts need it.
    from libp2p.crypto.ed25519 import Ed25519PrivateKey
    from libp2p.crypto.keys import KeyPair

    seed, _public = decode_private_key(privkey_b64)
    key = Ed25519PrivateKey.from_bytes(seed)
    return KeyPair(key, key.get_public_key())


def peer_id_of(keypair: KeyPair) -> str:
    """The base58btc peer ID string of ``keypair``."""
    return peer_id_from_public_key(keypair.public_key.to_bytes())


def public_key_b64(privkey_b64: str) -> str:
    """The base64 libp2p-protobuf public key of a base64 private key (kubo's ``id`` ``PublicKey``)."""
    return base64.b64encode(_key_protobuf(decode_private_key(privkey_b64)[1])).decode()
