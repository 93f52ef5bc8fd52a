"""The log's signing key: created on first start in the data directory, or read from a file
named in the configuration. Stored as ``PRIVATE+KEY+<name>+<hex id>+<base64(0x01||seed)>``."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from moorage.log.note import ALG_ED25519, NoteError, Signer, check_name, key_id

KEY_FILE = "log-signing-key"


def encode_signer(signer: Signer) -> str:
    seed = signer.private.private_bytes_raw()
    return (f"PRIVATE+KEY+{signer.name}+{key_id(signer.name, signer.public).hex()}+"
            f"{base64.b64encode(ALG_ED25519 + seed).decode()}")


def decode_signer(text: str) -> Signer:
    try:
        private, plus_key, name, _hex_id, encoded = text.strip().split("+", 4)
        raw = base64.b64decode(encoded, validate=True)
    except ValueError:
        raise NoteError("a signing key reads PRIVATE+KEY+NAME+KEYID+BASE64") from None
    if (private, plus_key) != ("PRIVATE", "KEY") or len(raw) != 33 or raw[:1] != ALG_ED25519:
        raise NoteError("not an Ed25519 signing key")
    return Signer(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))


def load_or_create(path: Path, origin: str | None = None) -> Signer:
    """Read the key at ``path``; if there is none, create it (mode 0600). Its name is the
    log's origin: ``origin`` if given, else ``moorage/<first 8 hex of the public key's hash>``."""
    if path.exists():
        return decode_signer(path.read_text(encoding="utf-8"))
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    name = origin or f"moorage/{hashlib.sha256(public).hexdigest()[:8]}"
    check_name(name)
    signer = Signer(name, private)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(encode_signer(signer) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(path.with_suffix(".tmp"), path)  # never replace a key another process just made
    except FileExistsError:
        signer = decode_signer(path.read_text(encoding="utf-8"))
    finally:
        path.with_suffix(".tmp").unlink(missing_ok=True)
    return signer
