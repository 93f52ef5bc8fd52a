"""Checkpoints as C2SP signed notes with an Ed25519 key.

A checkpoint body is ``<origin>\\n<tree size>\\n<base64 root hash>\\n``; a signature line is
``— <key name> <base64(4-byte key id || 64-byte signature)>``. The verifier key is written
``<name>+<hex key id>+<base64(0x01 || public key)>``, as other tlog tools read it.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALG_ED25519 = b"\x01"
DASH = "\u2014"


class NoteError(ValueError):
    """A note or checkpoint that does not parse or does not verify."""


def key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ALG_ED25519 + public).digest()[:4]


def check_name(name: str) -> None:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise NoteError(f"a log origin (the key's name) has no spaces and no '+': {name!r}")


@dataclass(frozen=True)
class Verifier:
    name: str
    public: bytes

    @property
    def id(self) -> bytes:
        return key_id(self.name, self.public)

    def vkey(self) -> str:
        return f"{self.name}+{self.id.hex()}+{base64.b64encode(ALG_ED25519 + self.public).decode()}"

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        try:
            name, hex_id, encoded = vkey.strip().split("+", 2)
            raw = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise NoteError("a verifier key reads NAME+KEYID+BASE64 (as `moorage log key` prints it)") from None
        if len(raw) != 33 or raw[:1] != ALG_ED25519:
            raise NoteError("the verifier key is not an Ed25519 key")
        verifier = cls(name, raw[1:])
        if verifier.id.hex() != hex_id.lower():
            raise NoteError("the verifier key's id does not match its name and key")
        return verifier

    def verify(self, note: str) -> str:
        """The note's text if one of its signatures is this key's; NoteError otherwise."""
        text, signatures = split_note(note)
        public = Ed25519PublicKey.from_public_bytes(self.public)
        for name, blob in signatures:
            if name == self.name and blob[:4] == self.id:
                try:
                    public.verify(blob[4:], text.encode())
                except InvalidSignature:
                    raise NoteError("the checkpoint's signature does not verify with the key") from None
                return text
        raise NoteError(f"the checkpoint is not signed by the key {self.name}+{self.id.hex()}")


@dataclass(frozen=True)
class Signer:
    name: str
    private: Ed25519PrivateKey

    @property
    def public(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.public)

    def sign(self, text: str) -> str:
        if not text.endswith("\n"):
            raise NoteError("a note's text ends with a newline")
        blob = key_id(self.name, self.public) + self.private.sign(text.encode())
        return f"{text}\n{DASH} {self.name} {base64.b64encode(blob).decode()}\n"


def split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    text, sep, rest = note.partition("\n\n")
    if not sep or not rest.endswith("\n"):
        raise NoteError("a signed note is text, a blank line and signature lines")
    signatures = []
    for line in rest[:-1].split("\n"):
        prefix = f"{DASH} "
        if not line.startswith(prefix):
            raise NoteError(f"not a signature line: {line[:40]!r}")
        name, _, encoded = line[len(prefix):].rpartition(" ")
        try:
            signatures.append((name, base64.b64decode(encoded, validate=True)))
        except ValueError:
            raise NoteError("a signature is not base64") from None
    return text + "\n", signatures


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("a checkpoint has an origin, a size and a root hash, each on a line")
        try:
            size = int(lines[1])
            root = base64.b64decode(lines[2], validate=True)
        except ValueError:
            raise NoteError("the checkpoint's size or root hash does not parse") from None
        if size < 0 or len(root) != 32:
            raise NoteError("the checkpoint's size or root hash is out of range")
        return cls(lines[0], size, root)
