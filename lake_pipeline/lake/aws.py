"""AWS clients and Delta storage options, from the standard AWS environment."""

from __future__ import annotations

import os
from contextlib import contextmanager

from lake_pipeline.lake.storage import StorageError, is_s3

# Transient S3 errors are retried by botocore (adaptive mode) and object_store, not by hand.
_RETRIES = {"max_attempts": 8, "mode": "adaptive"}


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def endpoint_url() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3") or None


def client(service: str):
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        service, region_name=region(), config=Config(retries=_RETRIES, connect_timeout=5, read_timeout=60)
    )


def s3_client():
    return client("s3")


@contextmanager
def storage_errors(where: str):
    """Turn botocore failures into one StorageError naming what to fix."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        yield
    except NoCredentialsError as exc:
        raise StorageError(
            f"no AWS credentials for {where}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
        ) from exc
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket",):
            raise StorageError(f"bucket of {where} does not exist: create it (make bootstrap) or fix the URI") from exc
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "403"):
            raise StorageError(f"access denied to {where} ({code}): check the AWS credentials and IAM policy") from exc
        raise StorageError(f"S3 error on {where}: {code or exc}") from exc
    except BotoCoreError as exc:
        ep = endpoint_url()
        hint = f" (AWS_ENDPOINT_URL={ep}: is the emulator running? `make aws-local`)" if ep else ""
        raise StorageError(f"cannot reach S3 for {where}: {exc}{hint}") from exc


def delta_storage_options(uri: str, locking: str = "conditional_put", lock_table: str = "") -> dict[str, str] | None:
    """object_store options for deltalake/polars on ``uri`` (None for local paths)."""
    if not is_s3(uri):
        return None
    opts: dict[str, str] = {"AWS_REGION": region()}
    ep = endpoint_url()
    if ep:
        opts["AWS_ENDPOINT_URL"] = ep
        if ep.startswith("http://"):
            opts["AWS_ALLOW_HTTP"] = "true"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        if os.environ.get(name):
            opts[name] = os.environ[name]
    if locking == "dynamodb":
        opts["AWS_S3_LOCKING_PROVIDER"] = "dynamodb"
        opts["DELTA_DYNAMO_TABLE_NAME"] = lock_table
    else:
        opts["conditional_put"] = "etag"
    return opts
