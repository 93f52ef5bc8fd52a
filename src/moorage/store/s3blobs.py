"""Content-addressed blob store in an S3 bucket (``[blobs] store = "s3"``), through boto3.

An upload is received exactly as with the file store: into ``<data_dir>/blobs/tmp`` on this
host, hashed as it arrives. ``place`` uploads it to ``<prefix><aa>/<bb>/<sha256>`` before the
database commit that references it; an object already under that key is left alone (the
key is the hash of the bytes). ``settle`` makes sure the object is there, then drops the
temporary file.

Nothing is deleted from the bucket except by ``remove``, which only `moorage admin purge`
calls, for bytes of files deleted longer ago than the retention period. A failed upload
(``abandon``) never deletes: several processes on several hosts share the bucket, and an
object one of them placed may already be the bytes of another's committed file. An orphan
object costs its storage; a missing one would break a file the index offers.

Credentials come from boto3's own chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
AWS_PROFILE, an instance or task role), never from moorage's configuration.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import boto3
from boto3.exceptions import Boto3Error
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from moorage.config import BlobSettings
from moorage.store.blobs import BlobInfo, BlobMissing, FileBlobStore, RemoteBytes, StagedBlob

_MISSING = {"404", "NoSuchKey", "NotFound"}


class BlobStoreUnavailable(OSError):
    """The bucket did not answer as it should. An OSError, so the web answers 503 with the
    reason (web/failures.py) and the CLI reports it, as for a failing disk."""

    def __init__(self, what: str, exc: BaseException) -> None:
        code = _code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        super().__init__(errno.EIO, f"object store: {what}: {code}")
        self.code = code  # e.g. NoSuchBucket, AccessDenied, EndpointConnectionError: no host or key


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "")) or "error"


def _is_missing(exc: ClientError) -> bool:
    return _code(exc) in _MISSING or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404


@dataclass(frozen=True)
class ObjectStream:
    """An open GET of one object (or a range of it); iterate it once, then it is closed."""

    body: Any
    length: int  # bytes in this answer
    last_modified: datetime | None

    def chunks(self, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        try:
            yield from self.body.iter_chunks(chunk_size)
        finally:
            self.body.close()


class S3BlobStore:
    def __init__(self, settings: BlobSettings, local_root: Path, client: Any = None) -> None:
        if not settings.bucket:
            raise ValueError("an S3 blob store needs a bucket")
        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        # Uploads in flight stay on this host's disk: the local store's receive, stage_bytes
        # and sweep_temporary are used as they are; its aa/bb/<sha256> layout never is.
        self._local = FileBlobStore(local_root)
        self.tmp = self._local.tmp
        if client is None:
            config = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=10, read_timeout=60,
                            max_pool_connections=32)
            client = boto3.session.Session().client(
                "s3", endpoint_url=settings.endpoint_url, region_name=settings.region, config=config)
        self.client = client

    def key(self, sha256: str) -> str:
        return f"{self.prefix}{sha256[:2]}/{sha256[2:4]}/{sha256}"

    # -- reading ---------------------------------------------------------------------------
    def size(self, sha256: str) -> int | None:
        """The object's size, or None when there is no object under the hash."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise BlobStoreUnavailable(f"HEAD {self.key(sha256)}", exc) from exc
        except BotoCoreError as exc:
            raise BlobStoreUnavailable(f"HEAD {self.key(sha256)}", exc) from exc
        return int(head["ContentLength"])

    def exists(self, sha256: str) -> bool:
        return self.size(sha256) is not None

    def read(self, sha256: str) -> bytes:
        stream = self.open(sha256)
        return b"".join(stream.chunks())

    def open(self, sha256: str, byte_range: tuple[int, int] | None = None) -> ObjectStream:
        """GET the object, or the bytes ``start..end`` (inclusive) of it."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(sha256)}
        if byte_range is not None:
            args["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        try:
            got = self.client.get_object(**args)
        except ClientError as exc:
            if _is_missing(exc):
                raise BlobMissing(sha256) from None
            raise BlobStoreUnavailable(f"GET {args['Key']}", exc) from exc
        except BotoCoreError as exc:
            raise BlobStoreUnavailable(f"GET {args['Key']}", exc) from exc
        return ObjectStream(got["Body"], int(got["ContentLength"]), got.get("LastModified"))

    def chunks(self, sha256: str) -> Iterator[bytes]:
        """The object's bytes in pieces (BlobMissing when there is none)."""
        try:
            yield from self.open(sha256).chunks(1 << 20)
        except (ClientError, BotoCoreError) as exc:  # the stream broke off
            raise BlobStoreUnavailable(f"GET {self.key(sha256)}", exc) from exc

    def iter_blobs(self) -> Iterator[BlobInfo]:
        """Every object under the prefix that has the blob layout ``<aa>/<bb>/<name>``."""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
            for page in pages:
                for obj in page.get("Contents", []):
                    parts = str(obj["Key"])[len(self.prefix):].split("/")
                    if len(parts) != 3:
                        continue
                    modified = obj.get("LastModified")
                    yield BlobInfo(parts[2], int(obj.get("Size", 0)), modified.timestamp() if modified else 0.0)
        except (ClientError, BotoCoreError) as exc:
            raise BlobStoreUnavailable(f"LIST {self.prefix}", exc) from exc

    def locate(self, sha256: str) -> RemoteBytes:
        """The object, for a download: its size asked with HEAD, its bytes (or a range) with
        GET, and with ``[blobs] downloads = "redirect"`` a presigned GET URL valid for
        ``presign_seconds`` that a GET is redirected to."""
        def presigned(content_type: str, content_disposition: str | None) -> str:
            return self.presigned_url(sha256, seconds=self.settings.presign_seconds, content_type=content_type,
                                      content_disposition=content_disposition)

        return RemoteBytes(size=lambda: self.size(sha256), read=lambda byte_range: self.open(sha256, byte_range),
                           url=presigned if self.settings.downloads == "redirect" else None)

    def presigned_url(self, sha256: str, *, seconds: int, content_type: str,
                      content_disposition: str | None = None) -> str:
        """A URL that GETs the object without credentials for ``seconds``, answered with
        the headers this index would send (type, attachment filename)."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(sha256),
                                  "ResponseContentType": content_type,
                                  "ResponseCacheControl": "public, max-age=31536000, immutable"}
        if content_disposition:
            params["ResponseContentDisposition"] = content_disposition
        try:
            return str(self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds))
        except BotoCoreError as exc:  # e.g. no credentials to sign with
            raise BlobStoreUnavailable(f"presigning {params['Key']}", exc) from exc

    # -- writing ---------------------------------------------------------------------------
    def receive(self, chunks_source: IO[bytes], limit: int, chunk_size: int = 1 << 20) -> StagedBlob:
        return self._local.receive(chunks_source, limit, chunk_size)

    def stage_bytes(self, data: bytes) -> StagedBlob:
        return self._local.stage_bytes(data)

    def _upload(self, staged: StagedBlob) -> None:
        key = self.key(staged.sha256)
        try:
            self.client.upload_file(str(staged.temp), self.bucket, key,
                                    ExtraArgs={"ContentType": "application/octet-stream"})
        except (ClientError, BotoCoreError, Boto3Error) as exc:  # S3UploadFailedError wraps the cause
            raise BlobStoreUnavailable(f"PUT {key}", exc) from exc

    def place(self, staged: StagedBlob) -> None:
        """Upload the staged bytes under their hash (before the database commit), unless an
        object is already there: the key is the hash, so those are the same bytes."""
        if staged.created:
            return  # an earlier attempt of this staging (a retried transaction) put it
        found = self.size(staged.sha256)
        if found == staged.size:
            return  # already there, put by someone else: left alone
        # Missing, or (damaged by hand) not the size its name says: put the right bytes.
        self._upload(staged)
        staged.created = found is None

    def settle(self, staged: StagedBlob) -> None:
        """After the commit: make sure the object is there, then drop the temporary file."""
        if not self.exists(staged.sha256):
            self._upload(staged)
        staged.temp.unlink(missing_ok=True)

    def abandon(self, staged: StagedBlob, still_referenced: bool) -> None:
        """After a failed commit: drop the temporary file only. The object stays, even one
        this staging created: another host may have committed a file with the same bytes
        between our check and a delete, and nothing leaves the bucket before retention ends."""
        staged.temp.unlink(missing_ok=True)

    def remove(self, sha256: str) -> None:
        """Purge only: the bytes of files deleted longer ago than the retention period."""
        key = self.key(sha256)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise BlobStoreUnavailable(f"DELETE {key}", exc) from exc

    def replace(self, staged: StagedBlob) -> None:
        """Repairs only (`moorage admin fsck --repair`): put bytes whose sha256 was checked
        under their hash, over a damaged object there; the temporary file is dropped."""
        self._upload(staged)
        staged.temp.unlink(missing_ok=True)

    def sweep_temporary(self, older_than: float = 3600.0, now: float | None = None) -> int:
        return self._local.sweep_temporary(older_than, now)

    def check_reachable(self) -> None:
        """/healthz: the bucket answers (HEAD bucket) with these credentials."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise BlobStoreUnavailable(f"HEAD bucket {self.bucket}", exc) from exc
