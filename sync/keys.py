"""The device's signing key: Ed25519 (``cryptography``), one per pad.

Why Ed25519: 64-byte signatures (short enough for a receipt's QR), 32-byte public keys the city
can register as one line of text, deterministic signing (no random number needed at the moment of
signing, so a weak RNG on a Pi at boot cannot leak the key), and fast verification for the city.

- The private key lives in one file (PKCS#8 PEM), created with owner-only permissions (0600) by
  an exclusive create, so it is never briefly readable by others and never overwritten.
- The key is never logged, printed or sent: :class:`DeviceKey` has no method that returns it and
  its ``repr`` shows only the fingerprint.
- The public key is shown as ``ed25519:<base64 of the 32 raw bytes>``; its fingerprint is the
  SHA-256 of those bytes in hex, and its **key id** (in every record and QR) the first 8 hex digits.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from evaluator.rules.errors import EvaluatorError
from sync.secretfile import read_secret, write_file

PUBLIC_PREFIX = "ed25519:"
#: A PEM Ed25519 private key is 119 bytes; anything much larger is not one.
KEY_FILE_MAX = 4096
KEY_ID_LEN = 8


class DeviceKeyError(EvaluatorError):
    """The device key cannot be created, read or used; the message says what to do."""


def fingerprint(raw_public: bytes) -> str:
    """SHA-256 of the raw public key, hex."""
    return hashlib.sha256(raw_public).hexdigest()


def key_id_of(raw_public: bytes) -> str:
    """The short id carried in records and links: the fingerprint's first 8 hex digits."""
    return fingerprint(raw_public)[:KEY_ID_LEN]


class PublicKey:
    """A device's public key, as the city registers it; checks signatures."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32:
            raise DeviceKeyError(f"an Ed25519 public key is 32 bytes, not {len(raw)}")
        self.raw = raw
        self._key = Ed25519PublicKey.from_public_bytes(raw)

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        """``ed25519:<base64>`` (what ``evaluator keys show`` prints), or a PEM public key; a
        path to a file holding either is read first."""
        text = text.strip()
        if not text.startswith((PUBLIC_PREFIX, "-----BEGIN")) and Path(text).is_file():
            text = Path(text).read_text(encoding="ascii", errors="replace").strip()
        if text.startswith(PUBLIC_PREFIX):
            try:
                raw = base64.b64decode(text[len(PUBLIC_PREFIX) :], validate=True)
            except ValueError as exc:
                raise DeviceKeyError(f"public key {text!r}: not base64: {exc}") from exc
            return cls(raw)
        if text.startswith("-----BEGIN PUBLIC KEY-----"):
            try:
                key = serialization.load_pem_public_key(text.encode("ascii"))
            except ValueError as exc:
                raise DeviceKeyError(f"public key: not a PEM public key: {exc}") from exc
            if not isinstance(key, Ed25519PublicKey):
                raise DeviceKeyError("public key: not an Ed25519 key")
            return cls(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
        raise DeviceKeyError(
            f"public key {text[:40]!r}: expected 'ed25519:<base64>' (evaluator keys show), "
            "a PEM public key, or a file holding one"
        )

    @property
    def text(self) -> str:
        return PUBLIC_PREFIX + base64.b64encode(self.raw).decode("ascii")

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.raw)

    @property
    def key_id(self) -> str:
        return key_id_of(self.raw)

    def check(self, data: bytes, signature: bytes) -> bool:
        """True when ``signature`` is this key's signature of ``data``."""
        try:
            self._key.verify(signature, data)
        except InvalidSignature:
            return False
        return True

    def __repr__(self) -> str:
        return f"PublicKey({self.text})"


class DeviceKey:
    """The device's private key, loaded from its file; signs.  Never shows the key."""

    def __init__(self, path: Path, private: Ed25519PrivateKey) -> None:
        self.path = path
        self._private = private
        raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public = PublicKey(raw)

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        return self._private.sign(data)

    def __repr__(self) -> str:
        return f"DeviceKey({self.path}, fingerprint={self.public.fingerprint})"

    @classmethod
    def create(cls, path: Path | str) -> DeviceKey:
        """A new key written to ``path`` (mode 0600, folder created 0700); never overwrites."""
        path = Path(path)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise DeviceKeyError(f"cannot create the key's folder {path.parent}: {exc}") from exc
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            write_file(path, pem, 0o600, replace=False)
        except FileExistsError as exc:
            what = "a device key" if path.is_file() else "something that is not a key file"
            raise DeviceKeyError(
                f"{path} already holds {what}; it is never overwritten (the city knows this "
                "device by its key). To replace it, move it away first and register the new one."
            ) from exc
        except OSError as exc:
            raise DeviceKeyError(f"cannot create the device key {path}: {exc}") from exc
        return cls(path, private)

    @classmethod
    def load(cls, path: Path | str) -> DeviceKey:
        """The key at ``path``; :class:`DeviceKeyError` says what to do when it is missing,
        unreadable, not a key, or readable by others than its owner."""
        path = Path(path)
        data = read_secret(
            path,
            what="device key",
            missing="create it with `evaluator keys init --config …`",
            max_size=KEY_FILE_MAX,
            error=DeviceKeyError,
        )
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise DeviceKeyError(f"{path} is not a device key (PEM, Ed25519)") from exc
        if not isinstance(private, Ed25519PrivateKey):
            raise DeviceKeyError(f"{path} is not an Ed25519 key")
        return cls(path, private)

    @classmethod
    def load_or_create(cls, path: Path | str) -> tuple[DeviceKey, bool]:
        """The key at ``path``, created when there is none; ``(key, created)``."""
        try:
            return cls.load(path), False
        except DeviceKeyError:
            if Path(path).exists():
                raise
        return cls.create(path), True
