"""[blobs] in the configuration: the file store by default, an S3 bucket when asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from moorage.config import BlobSettings, ConfigError, load_settings
from moorage.services.context import open_blob_store
from moorage.store.blobs import FileBlobStore


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> BlobSettings:
    config = tmp_path / "moorage.toml"
    config.write_text(text)
    return load_settings(config, data_dir=tmp_path / "data", environ=env or {}).blobs


def test_the_default_is_the_file_store(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data", environ={})
    assert settings.blobs == BlobSettings()
    assert settings.blobs.store == "file" and settings.blobs.downloads == "stream"
    assert isinstance(open_blob_store(settings), FileBlobStore)
    assert _load(tmp_path, '[blobs]\nstore = "file"\n') == BlobSettings()


def test_an_s3_store_with_every_key(tmp_path: Path) -> None:
    blobs = _load(tmp_path, '[blobs]\nstore = "s3"\nbucket = "wheels"\nprefix = "index"\n'
                            'endpoint_url = "http://127.0.0.1:9000"\nregion = "eu-1"\n'
                            'downloads = "redirect"\npresign_seconds = 60\n')
    assert blobs == BlobSettings(store="s3", bucket="wheels", prefix="index/", endpoint_url="http://127.0.0.1:9000",
                                 region="eu-1", downloads="redirect", presign_seconds=60)


def test_s3_defaults(tmp_path: Path) -> None:
    blobs = _load(tmp_path, '[blobs]\nstore = "s3"\nbucket = "wheels"\n')
    # No endpoint and no region of moorage's own: boto3 resolves them from its environment.
    assert (blobs.prefix, blobs.endpoint_url, blobs.region) == ("moorage/", None, None)
    assert (blobs.downloads, blobs.presign_seconds) == ("stream", 300)
    assert _load(tmp_path, '[blobs]\nstore = "s3"\nbucket = "b"\nprefix = ""\n').prefix == ""


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    env = {"MOORAGE_BLOB_STORE": "s3", "MOORAGE_BLOB_BUCKET": "from-env", "MOORAGE_BLOB_DOWNLOADS": "redirect",
           "MOORAGE_BLOB_PRESIGN_SECONDS": "90", "MOORAGE_BLOB_ENDPOINT_URL": "http://127.0.0.1:9000"}
    blobs = _load(tmp_path, '[blobs]\nstore = "file"\n', env)
    assert (blobs.store, blobs.bucket, blobs.downloads, blobs.presign_seconds) == ("s3", "from-env", "redirect", 90)
    assert blobs.endpoint_url == "http://127.0.0.1:9000"
    # Set explicitly to "file", the S3 keys stay (checked) but unused: switching back is one variable.
    back = _load(tmp_path, '[blobs]\nstore = "s3"\nbucket = "b"\n', {"MOORAGE_BLOB_STORE": "file"})
    assert back.store == "file"


@pytest.mark.parametrize(("text", "env", "mentions"), [
    pytest.param('[blobs]\nstore = "disk"\n', {}, ["blobs.store", "disk"], id="unknown-store"),
    pytest.param('[blobs]\nstore = "s3"\n', {}, ["blobs.bucket"], id="s3-without-bucket"),
    pytest.param('[blobs]\nbucket = "wheels"\n', {}, ["blobs.bucket", 'store = "s3"'], id="bucket-without-store"),
    pytest.param('[blobs]\ndownloads = "redirect"\n', {}, ["blobs.downloads"], id="redirect-without-store"),
    pytest.param('[blobs]\nstore = "s3"\nbucket = "b"\nbukket = "c"\n', {}, ["[blobs]", "bukket"],
                 id="unknown-key"),
    pytest.param('[blobs]\nstore = "s3"\nbucket = "b"\ndownloads = "proxy"\n', {}, ["blobs.downloads", "proxy"],
                 id="unknown-download-mode"),
    pytest.param('[blobs]\nstore = "s3"\nbucket = "b"\npresign_seconds = 0\n', {}, ["blobs.presign_seconds"],
                 id="presign-zero"),
    pytest.param('[blobs]\nstore = "s3"\nbucket = "b"\npresign_seconds = 700000\n', {}, ["blobs.presign_seconds"],
                 id="presign-past-seven-days"),
    pytest.param('[blobs]\nstore = "s3"\nbucket = "b"\npresign_seconds = "5m"\n', {}, ["blobs.presign_seconds"],
                 id="presign-not-a-number"),
    pytest.param('[blobs]\nstore = "s3"\nbucket = "b"\nendpoint_url = "127.0.0.1:9000"\n', {},
                 ["blobs.endpoint_url"], id="endpoint-without-scheme"),
    pytest.param('[blobs]\nstore = "s3"\nbucket = "b"\nprefix = "/abs"\n', {}, ["blobs.prefix"],
                 id="prefix-with-leading-slash"),
    pytest.param('[blobs]\nstore = "s3"\nbucket = ""\n', {}, ["blobs.bucket"], id="empty-bucket"),
    pytest.param('[blobs]\nstore = "s3"\nbucket = "b"\naws_secret_access_key = "x"\n', {},
                 ["blobs.aws_secret_access_key", "never read from the configuration", "AWS_ACCESS_KEY_ID"],
                 id="credentials-in-the-file"),
    pytest.param("blobs = 's3'\n", {}, ["blobs", "table"], id="blobs-not-a-table"),
    pytest.param("", {"MOORAGE_BLOB_STORE": "s3", "MOORAGE_BLOB_BUCKET": "b", "MOORAGE_BLOB_PRESIGN_SECONDS": "x"},
                 ["MOORAGE_BLOB_PRESIGN_SECONDS"], id="env-presign-not-a-number"),
    pytest.param("", {"MOORAGE_BLOB_STORE": "gcs"}, ["blobs.store", "gcs"], id="env-unknown-store"),
])
def test_invalid_blob_settings_are_refused(tmp_path: Path, text: str, env: dict[str, str],
                                           mentions: list[str]) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, text, env)
    for word in mentions:
        assert word in str(raised.value), (word, str(raised.value))
