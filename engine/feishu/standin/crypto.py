"""Feishu's event encryption and signature, implemented with pycryptodome and hashlib.

Feishu encrypts an event body as ``{"encrypt": base64(iv + AES-256-CBC(PKCS#7(json)))}`` where the AES key is
the SHA-256 digest of the app's *Encrypt Key* string and the IV is 16 random bytes prepended to the
ciphertext. lark-oapi's ``AESCipher.decrypt`` splits the first block off as the IV and strips PKCS#7
padding, so this module produces exactly that layout.

The signature header ``X-Lark-Signature`` is ``sha256(timestamp + nonce + encrypt_key + raw_body)`` in hex,
computed over the exact bytes that are POSTed.
"""

from __future__ import annotations

import base64
import hashlib
import os

from Crypto.Cipher import AES

BLOCK = AES.block_size  # 16


def _key(encrypt_key: str) -> bytes:
    return hashlib.sha256(encrypt_key.encode("utf-8")).digest()


def encrypt(encrypt_key: str, plaintext: str | bytes, *, iv: bytes | None = None) -> str:
    """Encrypt ``plaintext`` the way Feishu does and return the base64 text for the ``encrypt`` field."""
    data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
    pad = BLOCK - len(data) % BLOCK  # PKCS#7 always pads, a full block when already aligned
    data += bytes([pad]) * pad
    iv = iv if iv is not None else os.urandom(BLOCK)
    cipher = AES.new(_key(encrypt_key), AES.MODE_CBC, iv)
    return base64.b64encode(iv + cipher.encrypt(data)).decode("ascii")


def decrypt(encrypt_key: str, token: str) -> str:
    """The inverse of :func:`encrypt` (used by the stand-in's own tests and debugging tools)."""
    raw = base64.b64decode(token)
    if len(raw) < 2 * BLOCK or len(raw) % BLOCK:
        raise ValueError("invalid ciphertext length")
    plain = AES.new(_key(encrypt_key), AES.MODE_CBC, raw[:BLOCK]).decrypt(raw[BLOCK:])
    pad = plain[-1]
    if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
        raise ValueError("invalid PKCS#7 padding")
    return plain[:-pad].decode("utf-8")


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    """``X-Lark-Signature`` for a request body: sha256(timestamp + nonce + encrypt_key + body), hex."""
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode("utf-8") + body).hexdigest()
