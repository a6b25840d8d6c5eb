"""The payload codec: everything the engine hands Temporal is encrypted before it is stored.

Workflow inputs, signals, updates, activity arguments and results, queries' answers and memos carry
patient details (handover), candidates' contacts (recruiting) and the like; Temporal keeps them in its
histories (the dev server's SQLite file, a cluster's database and their backups) and shows them to anyone
with the Web UI or ``temporal workflow show``. With this codec they are stored as AES-256-GCM ciphertext.

One encoded payload::

    metadata: encoding = "binary/encrypted"       (the name Temporal's samples and Web UI use)
              encryption-key-id = "<key id>"       (which configured key; rotation)
              engine-compression = "zlib"          (only when the plaintext was compressed first)
    data:     12-byte nonce || AES-GCM(serialized original Payload, aad = key id and compression flag)

The key id and compression flag are authenticated (associated data): changing either fails decryption.
Payloads without ``encoding = binary/encrypted`` pass through undecoded, so histories written before the
codec was switched on (and recorded replay fixtures) still read and replay.

Keys: ``ENGINE_PAYLOAD_KEYS``-style text, ``id:base64key[,id:base64key...]``, newest first; each key is 32
bytes (AES-256). The newest encrypts, every listed key decrypts: to rotate, put a new key in front and
keep the old ones as long as histories encrypted with them are kept (the namespace's retention, plus
any long-running workflow's lifetime).

Compression: a serialized payload over ``compress_above`` bytes (default 1 KiB) is zlib-compressed before
encryption when that makes it smaller. Compressing before encrypting lets someone who can both inject
text into a payload and read ciphertext sizes learn something about the rest of it (as in CRIME); the
engine's payloads mix user text with other user text, and the size of stored histories matters more here.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import os
import re
import secrets
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

if TYPE_CHECKING:
    from engine.config import EngineConfig

log = logging.getLogger(__name__)

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
COMPRESSION = "engine-compression"
ZLIB = b"zlib"
NONCE_BYTES = 12  # AES-GCM's standard nonce size (NIST SP 800-38D); random per payload
KEY_BYTES = 32  # AES-256
COMPRESS_ABOVE = 1024
DEV_KEYS_FILE = "payload-keys"
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class CodecKeyError(ValueError):
    """The configured keys cannot be used; ``hint`` says how to fix them (never shows a key)."""

    def __init__(self, problem: str, hint: str) -> None:
        self.problem = problem
        self.hint = hint
        super().__init__(f"{problem} ({hint})")


class PayloadDecryptionError(ValueError):
    """An encrypted payload could not be decrypted (unknown key id, wrong key, tampered data)."""


def parse_keys(text: str) -> list[tuple[str, bytes]]:
    """``"id:base64key,id2:base64key2"`` → ``[(id, 32 key bytes), ...]`` in the given order (newest first).

    Raises :class:`CodecKeyError` for an empty list, a missing id, a key that is not base64 or not 32
    bytes, or a repeated id.
    """
    keys: list[tuple[str, bytes]] = []
    hint = f"write id:base64key pairs separated by commas, each key {KEY_BYTES} random bytes in base64 " \
           "(python -m engine.codec generates one)"
    for index, item in enumerate(part.strip() for part in text.split(",")):
        if not item:
            continue
        key_id, sep, encoded = item.partition(":")
        key_id = key_id.strip()
        if not sep or not _KEY_ID.fullmatch(key_id):
            raise CodecKeyError(f"key #{index + 1} has no id (letters, digits, '.', '_' or '-') before ':'", hint)
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise CodecKeyError(f"key {key_id!r} is not valid base64", hint) from None
        if len(key) != KEY_BYTES:
            raise CodecKeyError(f"key {key_id!r} is {len(key)} bytes, not {KEY_BYTES}", hint)
        if any(key_id == known for known, _ in keys):
            raise CodecKeyError(f"key id {key_id!r} appears twice", "give each key its own id")
        keys.append((key_id, key))
    if not keys:
        raise CodecKeyError("no key is given", hint)
    return keys


def new_key_text(key_id: str | None = None) -> str:
    """A fresh ``id:base64key`` entry (the id defaults to today's date, e.g. ``k20261130``)."""
    key_id = key_id or datetime.now(UTC).strftime("k%Y%m%d")
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM with key ids, rotation and compression; see the module docstring for the format."""

    def __init__(self, keys: Sequence[tuple[str, bytes]], *, compress_above: int = COMPRESS_ABOVE) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if not keys:
            raise CodecKeyError("no key is given", "configure at least one key")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}
        self.key_id = keys[0][0]
        self.compress_above = compress_above

    @classmethod
    def from_text(cls, text: str, **kwargs: int) -> EncryptionCodec:
        return cls(parse_keys(text), **kwargs)

    @staticmethod
    def _aad(key_id: str, compression: bytes) -> bytes:
        return b"engine-payload/1|" + key_id.encode() + b"|" + compression

    def encrypt(self, payload: Payload) -> Payload:
        plain = payload.SerializeToString()
        compression = b""
        if len(plain) > self.compress_above:
            packed = zlib.compress(plain, 6)
            if len(packed) < len(plain):
                plain, compression = packed, ZLIB
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.key_id].encrypt(nonce, plain, self._aad(self.key_id, compression))
        metadata = {"encoding": ENCODING, KEY_ID: self.key_id.encode()}
        if compression:
            metadata[COMPRESSION] = compression
        return Payload(metadata=metadata, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before the codec was on, or a recorded fixture: plain
        from cryptography.exceptions import InvalidTag

        key_id = payload.metadata.get(KEY_ID, b"").decode("utf-8", "replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadDecryptionError(
                f"payload encrypted with key {key_id!r}, which is not configured "
                f"(configured: {', '.join(self._ciphers)}): add it back to the keys")
        compression = payload.metadata.get(COMPRESSION, b"")
        data = payload.data
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], self._aad(key_id, compression))
        except InvalidTag:
            raise PayloadDecryptionError(f"payload does not decrypt with key {key_id!r} "
                                         "(wrong key under that id, or altered data)") from None
        if compression == ZLIB:
            plain = zlib.decompress(plain)
        elif compression:
            raise PayloadDecryptionError(f"unknown compression {compression!r}")
        return Payload.FromString(plain)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]


def data_converter(codec: PayloadCodec | None) -> DataConverter:
    """The engine's data converter: pydantic's converter, plus ``codec`` when there is one."""
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)


def write_private(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only, holding ``text``; an existing file is kept as it is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


def dev_keys(state_dir: Path) -> str:
    """The key text ``engine dev`` keeps in its state dir, created (owner-only) on first use."""
    path = state_dir / DEV_KEYS_FILE
    write_private(path, new_key_text("dev1") + "\n")
    return path.read_text(encoding="utf-8").strip()


def payload_codec(config: EngineConfig, state_dir: Path | None = None) -> EncryptionCodec | None:
    """The codec of the processes that use ``config``: the configured keys, else ``engine dev``'s own.

    ``[temporal] payload_keys`` names the environment variable holding the keys. Without it, the key
    file ``engine dev`` wrote in the state dir is used when there is one (so ``engine workflows show``
    reads a dev instance's workflows); otherwise there is no codec and payloads are stored in plain text.
    Raises :class:`CodecKeyError` when the configured keys are unusable.
    """
    ref = config.temporal.payload_keys
    if ref is not None:
        text = os.environ.get(ref.env)
        if text is None:
            raise CodecKeyError(f"{config.path}: temporal.payload_keys: environment variable {ref.env} is unset",
                                f"export {ref.env}=... (python -m engine.codec prints a new key)")
        try:
            return EncryptionCodec.from_text(text)
        except CodecKeyError as error:
            raise CodecKeyError(f"{config.path}: temporal.payload_keys ({ref.env}): {error.problem}",
                                error.hint) from None
    path = config.state_dir(state_dir) / DEV_KEYS_FILE
    if path.exists():
        try:
            return EncryptionCodec.from_text(path.read_text(encoding="utf-8"))
        except CodecKeyError as error:
            raise CodecKeyError(f"{path}: {error.problem}", "restore the file from a backup; without it the "
                                "workflows engine dev encrypted cannot be read") from None
    return None


def main() -> None:
    """``python -m engine.codec [ID]``: print a new ``id:base64key`` entry for the keys variable."""
    import sys

    print(new_key_text(sys.argv[1] if len(sys.argv) > 1 else None))


if __name__ == "__main__":
    main()
