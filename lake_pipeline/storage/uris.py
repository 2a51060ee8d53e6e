"""Lake and landing-zone URIs: local paths or ``s3://bucket/prefix``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://") or uri.startswith("s3a://")


def normalize_uri(uri: str) -> str:
    """Absolute local path, or the s3 URI without a trailing slash."""
    if is_s3(uri):
        return "s3://" + uri.split("://", 1)[1].rstrip("/")
    if uri.startswith("file://"):
        uri = urlparse(uri).path
    return str(Path(uri).expanduser().resolve())


def join(uri: str, *parts: str) -> str:
    base = normalize_uri(uri)
    rel = "/".join(p.strip("/") for p in parts if p)
    return f"{base}/{rel}" if rel else base
