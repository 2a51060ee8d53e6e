"""AWS clients and Delta storage options, from the standard AWS environment.

Every AWS client of the project comes from here, so they all honour the same variables:

- ``AWS_ENDPOINT_URL`` (and the per-service ``AWS_ENDPOINT_URL_S3``, ``_KINESIS``,
  ``_FIREHOSE``): an emulator such as ``make aws-local``'s moto server; plain
  ``http://`` endpoints work (object_store gets ``AWS_ALLOW_HTTP``);
- ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` (default ``us-east-1``);
- the credentials chain: environment keys, ``AWS_PROFILE``, SSO, web identity, the ECS
  task role and instance metadata (boto3 and delta-rs each resolve it);
- ``AWS_RETRY_MODE`` / ``AWS_MAX_ATTEMPTS``: transient errors are retried with backoff
  by botocore (adaptive mode, 5 attempts by default); Delta I/O is retried by
  object_store (exponential backoff, within ``retry_timeout``). No hand-written loops.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager

from lake_pipeline.storage.errors import StorageError, one_line
from lake_pipeline.storage.uris import is_s3

DEFAULT_REGION = "us-east-1"
DEFAULT_RETRY_MODE = "adaptive"
DEFAULT_MAX_ATTEMPTS = 5
# How Delta commits on S3 are made safe with concurrent writers (Settings.s3_locking).
LOCKING_MODES = ("conditional_put",)


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def endpoint_url(service: str = "s3") -> str | None:
    """The endpoint override for ``service`` (None: AWS's own endpoints)."""
    specific = os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}")
    return specific or os.environ.get("AWS_ENDPOINT_URL") or None


def max_attempts() -> int:
    try:
        return max(1, int(os.environ.get("AWS_MAX_ATTEMPTS") or DEFAULT_MAX_ATTEMPTS))
    except ValueError:
        return DEFAULT_MAX_ATTEMPTS


def retry_mode() -> str:
    mode = os.environ.get("AWS_RETRY_MODE") or DEFAULT_RETRY_MODE
    return mode if mode in ("legacy", "standard", "adaptive") else DEFAULT_RETRY_MODE


def client(service: str):
    """A boto3 client for ``service`` configured from the standard AWS environment."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": retry_mode(), "total_max_attempts": max_attempts()},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=32,
    )
    return boto3.session.Session().client(
        service, region_name=region(), endpoint_url=endpoint_url(service), config=config
    )


def s3_client():
    return client("s3")


def s3_resource():
    """dagster-aws's S3 resource, configured like :func:`s3_client` (used by the landing sensor)."""
    from dagster_aws.s3 import S3Resource

    return S3Resource(region_name=region(), endpoint_url=endpoint_url("s3"), max_attempts=max_attempts())


def _hint() -> str:
    ep = endpoint_url("s3")
    return f" (AWS_ENDPOINT_URL={ep}: is the emulator running? `make aws-local`)" if ep else ""


@contextmanager
def storage_errors(where: str):
    """Turn botocore failures into one StorageError naming what to fix."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    try:
        yield
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise StorageError(
            f"no AWS credentials for {where}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
        ) from exc
    except ClientError as exc:
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            raise StorageError(f"bucket of {where} does not exist: create it (make bootstrap) or fix the URI") from exc
        if code == "ResourceNotFoundException":
            raise StorageError(f"{where} does not exist: create it (make bootstrap) or fix the name") from exc
        if code == "NoSuchKey":
            raise StorageError(f"{where} does not exist (deleted while it was being read?)") from exc
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "UnrecognizedClientException"):
            raise StorageError(f"AWS rejected the credentials for {where} ({code}): check AWS_ACCESS_KEY_ID/AWS_PROFILE") from exc
        if code in ("AccessDenied", "403", "AllAccessDisabled") or status == 403:
            raise StorageError(f"access denied to {where} ({code}): check the AWS credentials and IAM policy") from exc
        if code in ("PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"):
            raise StorageError(f"{where} is in another region than {region()} ({code}): set AWS_REGION") from exc
        raise StorageError(f"AWS error on {where}: {code or exc}: {err.get('Message', '')}".rstrip(": ")) from exc
    except EndpointConnectionError as exc:
        raise StorageError(f"cannot reach AWS for {where}: {exc}{_hint()}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"AWS request for {where} failed: {exc}{_hint()}") from exc


def object_store_error(where: str, exc: BaseException) -> StorageError:
    """One StorageError naming what to fix, for a deltalake/object_store failure on ``where``.

    object_store reports S3 errors as text (with the S3 XML error inside); the common
    causes get the same messages as the boto3 path (:func:`storage_errors`).
    """
    text = str(exc)
    code = re.search(r"<Code>([^<]+)</Code>", text)
    code = code.group(1) if code else ""
    if code == "NoSuchBucket":
        return StorageError(f"bucket of {where} does not exist: create it (make bootstrap) or fix the URI")
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
        return StorageError(f"AWS rejected the credentials for {where} ({code}): check AWS_ACCESS_KEY_ID/AWS_PROFILE")
    if code == "AccessDenied" or "403 Forbidden" in text:
        return StorageError(f"access denied to {where} ({code or '403'}): check the AWS credentials and IAM policy")
    lowered = text.lower()
    if "connection refused" in lowered or "tcp connect error" in lowered or "dns error" in lowered:
        return StorageError(f"cannot reach AWS for {where}: connection failed{_hint()}")
    if "credential" in lowered:
        return StorageError(f"no usable AWS credentials for {where}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE")
    detail = one_line(text)
    return StorageError(f"cannot use {where}: {detail[:400]}{'...' if len(detail) > 400 else ''}")


def delta_storage_options(uri: str, locking: str = "conditional_put", lock_table: str = "") -> dict[str, str] | None:
    """object_store options for deltalake/polars on ``uri`` (None for local paths).

    Concurrent writers: deltalake 1.x commits each Delta log entry on S3 with a
    conditional put (``If-None-Match: *``), so two writers can never both create
    version N; the loser re-reads the log and retries or reports a conflict. That is
    ``locking="conditional_put"``, the only mode: delta-rs 1.x removed the DynamoDB
    lock (``AWS_S3_LOCKING_PROVIDER=dynamodb`` only logs an error and is ignored), and
    every S3-compatible store we use (AWS S3 since 2024, moto) supports conditional writes.
    """
    if not is_s3(uri):
        return None
    if locking not in LOCKING_MODES:
        hint = (
            " (deltalake 1.x dropped the DynamoDB lock; S3 conditional writes replace it)"
            if locking == "dynamodb"
            else ""
        )
        raise StorageError(f"LAKE_S3_LOCKING={locking!r} is not supported: use conditional_put{hint}")
    opts: dict[str, str] = {"AWS_REGION": region()}
    ep = endpoint_url("s3")
    if ep:
        opts["AWS_ENDPOINT_URL"] = ep
        if ep.startswith("http://"):
            opts["AWS_ALLOW_HTTP"] = "true"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        if os.environ.get(name):
            opts[name] = os.environ[name]
    # Log entries are created with If-None-Match; data files get unique names.
    opts["conditional_put"] = "etag"
    # object_store retries transient errors (5xx, timeouts, connection resets) itself, with
    # exponential backoff (10 retries by default), for at most retry_timeout. No "max_retries"
    # here: Polars reads the table's options too and wants an int for that key.
    opts["retry_timeout"] = "120s"
    opts["connect_timeout"] = "5s"
    return opts

