"""Encryption at rest for notification channel URLs (Fernet, with key rotation).

Keys come from ``$MONITORS_SECRET_KEY`` (one or more Fernet keys, comma-separated;
the first encrypts, every one decrypts — so rotation is: put the new key first,
re-encrypt with ``SecretBox.rotate``, then drop the old key), else from the key
file ``$MONITORS_SECRET_KEY_FILE``, else from ``secret.key`` in the user's data
directory, which is created (mode 0600) on first use.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

__all__ = ["SECRET_KEY_ENV", "SECRET_KEY_FILE_ENV", "SecretBox", "SecretKeyError", "load_secret_box"]

SECRET_KEY_ENV = "MONITORS_SECRET_KEY"
SECRET_KEY_FILE_ENV = "MONITORS_SECRET_KEY_FILE"


class SecretKeyError(RuntimeError):
    """The encryption key is missing, malformed, or does not open a stored secret."""


class SecretBox:
    """Encrypts and decrypts short secrets with a ring of Fernet keys."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise SecretKeyError("no encryption key given")
        try:
            self._fernet = MultiFernet([Fernet(key.strip().encode()) for key in keys])
        except (ValueError, TypeError):
            raise SecretKeyError(
                "an encryption key is not a valid Fernet key (32 url-safe base64-encoded bytes); "
                "make one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
            ) from None

    @classmethod
    def generate(cls) -> SecretBox:
        return cls([Fernet.generate_key().decode()])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken:
            raise SecretKeyError(
                "a stored secret cannot be decrypted with the configured keys; "
                f"add the key it was encrypted with to {SECRET_KEY_ENV}"
            ) from None

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` under the first key."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise SecretKeyError("a stored secret cannot be decrypted with the configured keys") from None


def _key_file(data_dir: Path | None) -> Path:
    configured = os.environ.get(SECRET_KEY_FILE_ENV)
    if configured:
        return Path(configured)
    if data_dir is None:
        from .db import data_dir as default_dir

        data_dir = default_dir()
    return data_dir / "secret.key"


def load_secret_box(data_dir: Path | None = None, *, create: bool = True) -> SecretBox:
    """The box for the configured keys (see the module docstring for where they come from)."""
    env = os.environ.get(SECRET_KEY_ENV, "").strip()
    if env:
        return SecretBox([k for k in env.split(",") if k.strip()])
    path = _key_file(data_dir)
    if not path.exists():
        if not create:
            raise SecretKeyError(f"no encryption key: set {SECRET_KEY_ENV} or create the key file {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(Fernet.generate_key().decode() + "\n")
    keys = [line.strip() for line in path.read_text().replace(",", "\n").splitlines() if line.strip()]
    return SecretBox(keys)
