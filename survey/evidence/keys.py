"""The station's Ed25519 key (RFC 8032, through the ``cryptography`` package).

Created with the store, on first use: ``keys/station.key`` (PKCS #8 PEM, unencrypted, mode
0400: only its owner, the station account, reads it) and ``keys/station.pub`` (the public key
as SubjectPublicKeyInfo PEM, 0444, exported with every archive set and package). The key id is
the SHA-256 of the public key's DER form, so it can be checked with::

    openssl pkey -pubin -in station.pub -outform DER | sha256sum

Signatures are over the exact bytes given; ``openssl pkeyutl -verify -pubin -inkey
station.pub -rawin -in MESSAGE -sigfile SIG`` checks them (Ed25519 signs the message itself,
hence ``-rawin``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from survey.errors import NotAStoreError, StoreReadOnlyError
from survey.evidence.atomic import atomic_write_bytes

__all__ = ["PRIVATE_KEY_NAME", "PUBLIC_KEY_NAME", "StationKey", "key_id_of_pem"]

PRIVATE_KEY_NAME = "station.key"
PUBLIC_KEY_NAME = "station.pub"


def key_id_of_pem(public_pem: bytes) -> str:
    """Hex SHA-256 of the DER SubjectPublicKeyInfo of a PEM public key."""
    public = serialization.load_pem_public_key(public_pem)
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True, eq=False)
class StationKey:
    """The store's signing key: the public half always, the private half when readable.

    Attributes
    ----------
    folder : pathlib.Path
        ``STORE/keys``.
    public : Ed25519PublicKey
    private : Ed25519PrivateKey or None
        None until :meth:`private_key` loads it (writers only).
    """

    folder: Path
    public: Ed25519PublicKey

    @classmethod
    def create(cls, folder: Path) -> StationKey:
        """Generate a key pair into ``folder`` (private 0400, public 0444)."""
        folder.mkdir(mode=0o755, exist_ok=True)
        private = Ed25519PrivateKey.generate()
        atomic_write_bytes(
            folder / PRIVATE_KEY_NAME,
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            mode=0o400,
        )
        public = private.public_key()
        atomic_write_bytes(
            folder / PUBLIC_KEY_NAME,
            public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            mode=0o444,
        )
        return cls(folder, public)

    @classmethod
    def load(cls, folder: Path) -> StationKey:
        """The public key of a store (no access to the private key is needed).

        Raises
        ------
        NotAStoreError
            ``keys/station.pub`` is missing or is not an Ed25519 public key.
        """
        path = folder / PUBLIC_KEY_NAME
        try:
            public = serialization.load_pem_public_key(path.read_bytes())
        except FileNotFoundError as exc:
            raise NotAStoreError(
                f"{path}: the store's public key is missing; restore the store folder from "
                "a copy (its signed heads cannot be checked without it)"
            ) from exc
        except ValueError as exc:
            raise NotAStoreError(
                f"{path}: not a PEM public key ({exc}); restore the store folder from a copy"
            ) from exc
        if not isinstance(public, Ed25519PublicKey):
            raise NotAStoreError(
                f"{path}: a {type(public).__name__}, not an Ed25519 key; restore the store "
                "folder from a copy"
            )
        return cls(folder, public)

    @property
    def key_id(self) -> str:
        """Hex SHA-256 of the public key's DER SubjectPublicKeyInfo."""
        return hashlib.sha256(
            self.public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).hexdigest()

    def public_pem(self) -> bytes:
        """The public key as SubjectPublicKeyInfo PEM."""
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def private_key(self) -> Ed25519PrivateKey:
        """Load the private key (writers sign tree heads with it).

        Raises
        ------
        StoreReadOnlyError
            The key file cannot be read by this account (a supervisor's or analyst's view).
        NotAStoreError
            It is missing or is not the private half of the public key.
        """
        path = self.folder / PRIVATE_KEY_NAME
        try:
            data = path.read_bytes()
        except PermissionError as exc:
            raise StoreReadOnlyError(
                f"{path}: this account cannot read the station key (mode "
                f"{os.stat(path).st_mode & 0o777:04o}); sign as the station's account, or "
                "open the store read-only"
            ) from exc
        except FileNotFoundError as exc:
            raise NotAStoreError(
                f"{path}: the station key is missing; restore it from the station's backup "
                "(a new key would not match the signed heads already given out)"
            ) from exc
        private = serialization.load_pem_private_key(data, password=None)
        matches = isinstance(private, Ed25519PrivateKey) and (
            private.public_key().public_bytes_raw() == self.public.public_bytes_raw()
        )
        if not matches:
            raise NotAStoreError(
                f"{path}: not the private half of {self.folder / PUBLIC_KEY_NAME}; restore "
                "the station key from its backup"
            )
        assert isinstance(private, Ed25519PrivateKey)
        return private

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature (64 bytes) of ``message`` (the private key is loaded once)."""
        private = self.__dict__.get("_private")
        if private is None:
            private = self.private_key()
            self.__dict__["_private"] = private  # a cache on a frozen instance
        return private.sign(message)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when ``signature`` is this key's signature of ``message``."""
        try:
            self.public.verify(signature, message)
        except InvalidSignature:
            return False
        return True
