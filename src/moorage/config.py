"""Configuration: one TOML file plus environment overrides; no file at all runs the defaults.

Precedence (highest first): command-line flags, MOORAGE_* environment variables, the TOML
file (``--config`` or MOORAGE_CONFIG), built-in defaults.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from moorage.domain.names import normalize
from moorage.domain.policy import UploadPolicy

DEFAULT_DATA_DIR = "moorage-data"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


class ConfigError(Exception):
    pass


def parse_size(value: int | str, key: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a size such as 100 or '100 MiB', got {value!r}")
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ConfigError(f"{key}: expected a size such as 100 or '100 MiB', got {value!r}")
    number, unit = match.groups()
    return int(float(number) * _UNITS[(unit or "b").lower()])


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    upload: UploadPolicy = field(default_factory=UploadPolicy)
    # How often a process looks for changes written by other processes (page caches).
    cache_check_interval: float = 0.005
    config_file: Path | None = None

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'moorage.db').resolve()}"

    @property
    def is_embedded(self) -> bool:
        return self.db_url.startswith("sqlite")


def _upload_policy(section: dict[str, Any]) -> UploadPolicy:
    base = UploadPolicy()
    kwargs: dict[str, Any] = {}
    for key in ("max_file_size", "max_project_size", "max_uncompressed_size", "ratio_free_size",
                "max_metadata_size"):
        if key in section:
            kwargs[key] = parse_size(section.pop(key), f"upload.{key}")
    if "max_compression_ratio" in section:
        kwargs["max_compression_ratio"] = float(section.pop("max_compression_ratio"))
    if "prohibited_names" in section:
        names = section.pop("prohibited_names")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError("upload.prohibited_names: expected a list of names")
        kwargs["prohibited_names"] = frozenset(normalize(n) for n in names)
    if section:
        raise ConfigError(f"unknown keys in [upload]: {', '.join(sorted(section))}")
    return replace(base, **kwargs)


def load_settings(
    config: str | Path | None = None,
    *,
    data_dir: str | Path | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    env = os.environ if environ is None else environ
    config = config or env.get("MOORAGE_CONFIG") or None
    doc: dict[str, Any] = {}
    if config:
        path = Path(config)
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"configuration file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path}: {exc}") from None
    server = dict(doc.pop("server", {}))
    upload = dict(doc.pop("upload", {}))
    top_data_dir = doc.pop("data_dir", None)
    top_db = doc.pop("database_url", None)
    if doc:
        raise ConfigError(f"unknown keys in the configuration: {', '.join(sorted(doc))}")
    settings = Settings(config_file=Path(config) if config else None)
    chosen_dir = data_dir or env.get("MOORAGE_DATA_DIR") or top_data_dir
    if chosen_dir:
        settings = replace(settings, data_dir=Path(chosen_dir))
    db = env.get("MOORAGE_DATABASE_URL") or top_db
    if db:
        settings = replace(settings, database_url=db)
    settings = replace(
        settings,
        host=host or server.pop("host", settings.host),
        port=int(port or server.pop("port", settings.port)),
        workers=int(workers or server.pop("workers", settings.workers)),
        cache_check_interval=float(server.pop("cache_check_interval", settings.cache_check_interval)),
        upload=_upload_policy(upload),
    )
    server.pop("host", None), server.pop("port", None), server.pop("workers", None)
    if server:
        raise ConfigError(f"unknown keys in [server]: {', '.join(sorted(server))}")
    return settings
