"""The S3 blob store against moto's standalone server on loopback, with the real moorage server.

Skipped, with the reason, only when moto's server cannot start; in CI (CI set) it must start.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

from moorage.config import BlobSettings
from tests.support import clients
from tests.support.dists import Dist, make_sdist, make_wheel
from tests.support.s3 import AWS_ENV, MotoServer, moto_or_skip
from tests.support.server import Server, cli_env, raw_request, run_cli, start_server
from tests.support.upload import post_upload

pytestmark = pytest.mark.slow

JSON = "application/vnd.pypi.simple.v1+json"
PREFIX = "moorage/"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    started = moto_or_skip(tmp_path_factory.mktemp("moto"))
    yield started
    started.stop()


@dataclass
class S3Index:
    server: Server
    config: Path
    bucket: str
    s3: Any  # a boto3 client of moto, to look into the bucket directly
    offset_file: Path

    def env(self) -> dict[str, str]:
        return {**cli_env(self.server.data_dir), **AWS_ENV, "MOORAGE_CONFIG": str(self.config),
                "MOORAGE_CLOCK_OFFSET_FILE": str(self.offset_file)}

    def cli(self, *args: str, check: bool = True) -> Any:
        return run_cli(self.server.data_dir, *args, env=self.env(), check=check)

    def object_keys(self) -> set[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return {obj["Key"] for page in pages for obj in page.get("Contents", [])}

    def object(self, sha256: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.bucket, Key=key(sha256))["Body"].read())

    def move_clock(self, delta: timedelta) -> None:
        self.offset_file.write_text(str(delta.total_seconds()))

    def files(self, project: str) -> list[dict[str, Any]]:
        page = self.server.simple + project + "/"
        request = urllib.request.Request(page, headers={"Accept": JSON})
        with urllib.request.urlopen(request, timeout=30) as resp:
            found: list[dict[str, Any]] = json.loads(resp.read())["files"]
        for f in found:
            f["absolute"] = urljoin(page, f["url"])
        return found


def key(sha256: str) -> str:
    return f"{PREFIX}{sha256[:2]}/{sha256[2:4]}/{sha256}"


@pytest.fixture
def s3_index(moto: MotoServer, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[S3Index]:
    """A moorage server of its own, on a bucket of its own; downloads streamed unless the test
    parametrizes it (indirectly) with "redirect"."""
    downloads = getattr(request, "param", "stream")
    s3 = moto.client()
    bucket = f"moorage-test-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=bucket)
    config = tmp_path / "moorage.toml"
    config.write_text(f'[blobs]\nstore = "s3"\nbucket = "{bucket}"\nendpoint_url = "{moto.endpoint}"\n'
                      f'downloads = "{downloads}"\npresign_seconds = 120\n')
    offset = tmp_path / "clock-offset"
    server = start_server(tmp_path / "data", config=config,
                          extra_env={**AWS_ENV, "MOORAGE_CLOCK_OFFSET_FILE": str(offset)})
    try:
        yield S3Index(server, config, bucket, s3, offset)
    finally:
        server.stop()


def _publish(index: S3Index, *dists: Dist) -> None:
    result = clients.twine_upload(index.server.legacy, index.server.admin_token, *(d.path for d in dists))
    assert result.returncode == 0, result.stdout + result.stderr


def _local_blobs(index: S3Index) -> list[str]:
    root = index.server.data_dir / "blobs"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# -- uploads land in the bucket; downloads streamed ----------------------------------------
def test_uploads_land_in_the_bucket_and_pip_installs_streamed(s3_index: S3Index, dists: Path,
                                                              tmp_path: Path) -> None:
    wheel, sdist = make_wheel(dists, "harbour", "1.0"), make_sdist(dists, "harbour", "1.0")
    _publish(s3_index, wheel, sdist)

    files = {f["filename"]: f for f in s3_index.files("harbour")}
    expected = set()
    for dist in (wheel, sdist):
        data = dist.path.read_bytes()
        assert files[dist.filename]["hashes"]["sha256"] == dist.sha256
        assert s3_index.object(dist.sha256) == data  # under its content address, byte for byte
        expected.add(key(dist.sha256))
        metadata_sha = files[dist.filename]["core-metadata"]["sha256"]
        assert s3_index.object(metadata_sha) == dist.metadata
        expected.add(key(metadata_sha))
    assert s3_index.object_keys() == expected
    # Nothing stays on this host's disk: uploads pass through blobs/tmp and leave it.
    assert _local_blobs(s3_index) == ["tmp"]

    venv = clients.fresh_venv(tmp_path / "venv")
    result = clients.pip_install(venv, s3_index.server.simple, "harbour==1.0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert clients.installed(venv)["harbour"] == "1.0"

    url, data = files[wheel.filename]["absolute"], wheel.path.read_bytes()
    status, headers, body = raw_request(url)
    assert (status, body) == (200, data)
    assert headers["etag"] == f'"{wheel.sha256}"'
    assert "immutable" in headers["cache-control"]
    assert headers["content-length"] == str(len(data))
    assert headers["content-disposition"] == f'attachment; filename="{wheel.filename}"'

    status, headers, body = raw_request(url, "HEAD")
    assert (status, body, headers["content-length"]) == (200, b"", str(len(data)))
    assert headers["etag"] == f'"{wheel.sha256}"'

    status, headers, body = raw_request(url, headers={"Range": "bytes=0-9"})
    assert (status, body) == (206, data[:10])
    assert headers["content-range"] == f"bytes 0-9/{len(data)}"
    assert headers["content-length"] == "10"
    status, headers, body = raw_request(url, headers={"Range": "bytes=-22"})  # the zip's end record
    assert (status, body) == (206, data[-22:])
    assert headers["content-range"] == f"bytes {len(data) - 22}-{len(data) - 1}/{len(data)}"
    status, headers, _ = raw_request(url, headers={"Range": f"bytes={len(data) + 10}-{len(data) + 20}"})
    assert (status, headers["content-range"]) == (416, f"bytes */{len(data)}")
    for ignored in ("bytes=abc", "bytes=10-5", "items=0-9"):  # RFC 9110: ignored, the whole file
        status, headers, body = raw_request(url, headers={"Range": ignored})
        assert (status, body, headers.get("content-range")) == (200, data, None), ignored
    status, headers, body = raw_request(url, headers={"If-None-Match": f'"{wheel.sha256}"'})
    assert (status, body, headers["etag"]) == (304, b"", f'"{wheel.sha256}"')

    status, headers, body = raw_request(url + ".metadata")
    assert (status, body) == (200, wheel.metadata)
    assert headers["etag"] == f'"{hashlib.sha256(wheel.metadata).hexdigest()}"'
    status, headers, body = raw_request(url + ".metadata", headers={"Range": "bytes=0-16"})
    assert (status, body) == (206, wheel.metadata[:17])
    assert headers["content-range"] == f"bytes 0-16/{len(wheel.metadata)}"

    with urllib.request.urlopen(s3_index.server.url + "healthz", timeout=10) as resp:
        assert resp.status == 200  # the bucket answers HEAD


@pytest.mark.parametrize("s3_index", ["redirect"], indirect=True)
def test_redirected_downloads_go_to_a_presigned_url(s3_index: S3Index, dists: Path, tmp_path: Path) -> None:
    wheel = make_wheel(dists, "mooring", "2.0")
    _publish(s3_index, wheel)
    (found,) = s3_index.files("mooring")
    data = wheel.path.read_bytes()

    status, headers, _ = raw_request(found["absolute"])
    assert status == 302
    location = headers["location"]
    assert location.startswith(urlsplit(s3_index.s3.meta.endpoint_url).geturl()), location
    assert "Signature" in location or "X-Amz-Signature" in location
    assert headers["cache-control"] == "no-store"  # the URL expires; the redirect is not kept
    with urllib.request.urlopen(location, timeout=30) as resp:  # no credentials: the URL is signed
        assert resp.read() == data
    status, _, body = raw_request(location, headers={"Range": "bytes=0-9"})
    assert (status, body) == (206, data[:10])

    status, headers, body = raw_request(found["absolute"], "HEAD")  # answered here: a GET URL refuses HEAD
    assert (status, body, headers["content-length"]) == (200, b"", str(len(data)))

    status, headers, _ = raw_request(found["absolute"] + ".metadata")
    assert status == 302
    with urllib.request.urlopen(headers["location"], timeout=30) as resp:
        assert resp.read() == wheel.metadata

    venv = clients.fresh_venv(tmp_path / "venv")
    result = clients.pip_install(venv, s3_index.server.simple, "mooring")
    assert result.returncode == 0, result.stdout + result.stderr
    assert clients.installed(venv)["mooring"] == "2.0"


# -- refusals place nothing ------------------------------------------------------------------
def test_refused_uploads_leave_no_object(s3_index: S3Index, dists: Path, tmp_path: Path) -> None:
    wheel = make_wheel(dists, "jetty", "1.0")
    _publish(s3_index, wheel)
    before = s3_index.object_keys()
    assert key(wheel.sha256) in before

    # Other bytes under a filename already taken: refused before anything is placed.
    other = make_wheel(tmp_path / "other", "jetty", "1.0", module_body="answer = 42\n")
    assert other.filename == wheel.filename and other.sha256 != wheel.sha256
    status, reason, _body = post_upload(s3_index.server.legacy, s3_index.server.admin_token, other.path)
    assert status == 400 and "File already exists" in reason, reason

    # A user who does not maintain the project: refused too.
    s3_index.cli("user", "add", "mallory")
    mallory = s3_index.cli("token", "create", "mallory").stdout.strip()
    newer = make_wheel(dists, "jetty", "1.1")
    status, reason, _body = post_upload(s3_index.server.legacy, mallory, newer.path)
    assert status == 403, (status, reason)

    assert s3_index.object_keys() == before
    assert key(other.sha256) not in s3_index.object_keys() and key(newer.sha256) not in s3_index.object_keys()
    assert _local_blobs(s3_index) == ["tmp"]  # and the temporary files are gone


# -- deletion keeps the bytes for the retention period; purge removes them after it --------
def test_deleted_bytes_stay_in_the_bucket_until_purged_after_retention(s3_index: S3Index, dists: Path) -> None:
    kept, doomed = make_wheel(dists, "quay", "1.0"), make_wheel(dists, "quay", "1.1")
    _publish(s3_index, kept, doomed)
    files = {f["filename"]: f for f in s3_index.files("quay")}
    doomed_keys = {key(doomed.sha256), key(files[doomed.filename]["core-metadata"]["sha256"])}
    kept_keys = {key(kept.sha256), key(files[kept.filename]["core-metadata"]["sha256"])}
    assert s3_index.object_keys() == doomed_keys | kept_keys

    s3_index.cli("delete", "quay", "1.1", doomed.filename, "--reason", "published by mistake")
    assert raw_request(files[doomed.filename]["absolute"])[0] == 404
    assert s3_index.object_keys() == doomed_keys | kept_keys  # the bytes stay: an admin may restore

    early = s3_index.cli("admin", "purge")
    assert "0 file(s)" in early.stderr, early.stderr
    s3_index.move_clock(timedelta(days=89))  # retention is 90 days
    assert "0 file(s)" in s3_index.cli("admin", "purge").stderr
    assert s3_index.object_keys() == doomed_keys | kept_keys

    s3_index.move_clock(timedelta(days=91))
    late = s3_index.cli("admin", "purge")
    assert f"1 file(s) past retention: {doomed.filename}" in late.stderr, late.stderr
    assert s3_index.object_keys() == kept_keys
    restore = s3_index.cli("admin", "restore", "quay", "1.1", doomed.filename, "--reason", "too late",
                           check=False)
    assert restore.returncode == 3 and "retention-expired" in restore.stderr, restore.stderr
    status, _, body = raw_request(files[kept.filename]["absolute"])
    assert (status, body) == (200, kept.path.read_bytes())


# -- a bucket that stops answering -------------------------------------------------------------
def test_a_missing_bucket_is_a_503_and_nothing_is_committed(s3_index: S3Index, dists: Path) -> None:
    s3_index.s3.delete_bucket(Bucket=s3_index.bucket)  # still empty: nothing uploaded yet
    wheel = make_wheel(dists, "breakwater", "1.0")
    status, reason, body = post_upload(s3_index.server.legacy, s3_index.server.admin_token, wheel.path)
    assert status == 503, (status, reason, body)
    assert "storage" in body and "nothing was changed" in body, body
    assert raw_request(s3_index.server.simple + "breakwater/")[0] == 404  # no row without its bytes
    assert _local_blobs(s3_index) == ["tmp"]
    status, _, body = raw_request(s3_index.server.url + "healthz")
    assert status == 503 and body.startswith(b"blob store unreachable"), body

    s3_index.s3.create_bucket(Bucket=s3_index.bucket)  # back: the same upload now succeeds
    _publish(s3_index, wheel)
    assert s3_index.object(wheel.sha256) == wheel.path.read_bytes()
    assert raw_request(s3_index.server.url + "healthz")[0] == 200


# -- the store itself: content addressing, never deleting a failed upload's object ----------
def test_the_store_places_once_and_abandon_never_deletes(moto: MotoServer, tmp_path: Path) -> None:
    import io

    from moorage.store.s3blobs import BlobStoreUnavailable, S3BlobStore

    s3 = moto.client()
    bucket = f"moorage-store-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=bucket)
    store = S3BlobStore(BlobSettings(store="s3", bucket=bucket, prefix="p/"), tmp_path / "blobs", client=s3)
    store.check_reachable()

    first = store.receive(io.BytesIO(b"bytes of a wheel"), limit=1000)
    assert first.temp.parent == tmp_path / "blobs" / "tmp" and first.temp.exists()
    assert not store.exists(first.sha256)
    store.place(first)
    assert first.created and store.read(first.sha256) == b"bytes of a wheel"
    head = s3.head_object(Bucket=bucket, Key=f"p/{first.sha256[:2]}/{first.sha256[2:4]}/{first.sha256}")
    assert head["ContentLength"] == len(b"bytes of a wheel")

    second = store.receive(io.BytesIO(b"bytes of a wheel"), limit=1000)
    store.place(second)
    assert not second.created  # already there: left alone
    store.place(first)  # a retried transaction: nothing more to do
    assert first.created

    # A failed upload that created the object still leaves it: nothing is deleted before retention.
    store.abandon(first, still_referenced=False)
    assert not first.temp.exists() and store.exists(first.sha256)

    # settle puts the object back if it went missing, then drops the temporary file.
    store.remove(second.sha256)
    assert not store.exists(second.sha256)
    store.settle(second)
    assert store.read(second.sha256) == b"bytes of a wheel" and not second.temp.exists()
    assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == ["tmp"]

    missing = S3BlobStore(BlobSettings(store="s3", bucket="no-such-bucket-here"), tmp_path / "b2", client=s3)
    with pytest.raises(BlobStoreUnavailable) as raised:
        missing.check_reachable()
    assert raised.value.code in ("NoSuchBucket", "404")


# -- the embedded backup does not cover a bucket ------------------------------------------
def test_backup_refuses_an_s3_store(tmp_path: Path) -> None:
    config = tmp_path / "moorage.toml"
    config.write_text('[blobs]\nstore = "s3"\nbucket = "somewhere"\nendpoint_url = "http://127.0.0.1:9"\n')
    env = {**cli_env(tmp_path / "data"), **AWS_ENV, "MOORAGE_CONFIG": str(config)}
    result = run_cli(tmp_path / "data", "backup", str(tmp_path / "backup"), env=env, check=False)
    assert result.returncode == 2, result.stderr
    assert "S3 bucket 'somewhere'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "backup").exists()
