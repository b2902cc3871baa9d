"""Peer identities: Ed25519 keys in kubo's ``Identity.PrivKey`` format.

The private key is stored as base64 of the libp2p ``PrivateKey`` protobuf
(``Type = Ed25519``, ``Data`` = 32-byte seed followed by the 32-byte public
key, as go-libp2p and kubo write it). The peer ID is the identity multihash of
the public key protobuf, printed in base58btc (``12D3KooW...``).
"""

from __future__ import annotations

import base64
import binascii

from libp2p.crypto.ed25519 import Ed25519PrivateKey
from libp2p.crypto.keys import KeyPair, KeyType
from libp2p.crypto.pb import crypto_pb2
from libp2p.peer.id import ID
from ..errors import NodeError


class IdentityError(NodeError, ValueError):
    """A private key that cannot be decoded or is not an Ed25519 key."""


def _encode_private_key(key: Ed25519PrivateKey) -> bytes:
    seed = key.to_bytes()
    public = key.get_public_key().to_bytes()
    msg = crypto_pb2.PrivateKey(key_type=crypto_pb2.KeyType.Ed25519, data=seed + public)
    return msg.SerializeToString()


def generate_identity() -> tuple[str, str]:
    """Make a fresh Ed25519 identity: ``(peer ID string, base64 private key)``."""
    key = Ed25519PrivateKey.new()
    keypair = KeyPair(key, key.get_public_key())
    return peer_id_of(keypair), base64.b64encode(_encode_private_key(key)).decode("ascii")


def load_keypair(privkey_b64: str) -> KeyPair:
    """Decode a base64 libp2p-protobuf Ed25519 private key into a KeyPair.

    Accepts the 64-byte form (seed + public key, checked for consistency) and
    the bare 32-byte seed. Raises IdentityError naming the problem otherwise.
    """
    if not isinstance(privkey_b64, str) or not privkey_b64.strip():
        raise IdentityError("private key is empty")
    try:
        raw = base64.b64decode(privkey_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise IdentityError("private key is not valid base64") from None
    msg = crypto_pb2.PrivateKey()
    try:
        msg.ParseFromString(raw)
    except Exception:  # protobuf's DecodeError is not a stable public name
        raise IdentityError("private key is not a libp2p PrivateKey protobuf") from None
    if not msg.HasField("key_type") or not msg.HasField("data"):
        raise IdentityError("private key protobuf lacks its Type or Data field")
    if msg.key_type != crypto_pb2.KeyType.Ed25519:
        raise IdentityError(f"private key type {KeyType(msg.key_type).name} is not supported (Ed25519 only)")
    data = msg.data
    if len(data) not in (32, 64):
        raise IdentityError(f"Ed25519 private key data is {len(data)} bytes, expected 64 (or a 32-byte seed)")
    key = Ed25519PrivateKey.from_bytes(data[:32])
    public = key.get_public_key()
    if len(data) == 64 and data[32:] != public.to_bytes():
        raise IdentityError("Ed25519 private key's embedded public key does not match its seed")
    return KeyPair(key, public)


def peer_id_of(keypair: KeyPair) -> str:
    """The base58btc peer ID string of ``keypair``."""
    return ID.from_pubkey(keypair.public_key).to_base58()


def public_key_b64(privkey_b64: str) -> str:
    """The base64 libp2p-protobuf public key of a base64 private key (kubo's ``id`` ``PublicKey``)."""
    return base64.b64encode(load_keypair(privkey_b64).public_key.serialize()).decode()
