"""`lake bootstrap`: create on the emulator what Terraform creates in AWS.

- the raw and lake buckets (``bucket_names("local")``, or the buckets of
  ``LAKE_RAW_URI``/``LAKE_URI`` when those are ``s3://`` URIs);
- the Kinesis Data Stream (``LAKE_STREAM_NAME``, on-demand);
- the Firehose delivery stream (``LAKE_DELIVERY_STREAM_NAME``) writing GZIP objects to
  the raw bucket under the raw prefix (``raw/``, then ``YYYY/MM/dd/HH/``), errors
  under ``errors/``.

In AWS the delivery stream reads the Kinesis stream (``KinesisStreamAsSource``,
``terraform/modules/ingestion``). moto has no Kinesis→Firehose hop, so locally the
delivery stream is ``DirectPut`` and ``lake produce`` sends to it directly (its default
target). moto delivers each ``PutRecordBatch`` at once as one S3 object with a real
Firehose key name; it does not gzip (the parser tells by the magic bytes, not the name).

Re-running is harmless: what exists is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlparse

from lake_pipeline.storage import aws
from lake_pipeline.storage.uris import is_s3, normalize_uri
from lake_pipeline.settings import FIREHOSE_ERROR_PREFIX, FIREHOSE_RAW_PREFIX, Settings, bucket_names

# moto does not check IAM; the role only has to look like an ARN.
LOCAL_ACCOUNT = "123456789012"
FIREHOSE_ROLE_ARN = f"arn:aws:iam::{LOCAL_ACCOUNT}:role/lakehouse-local-firehose"


class BootstrapError(RuntimeError):
    pass


@dataclass(frozen=True)
class Layout:
    raw_bucket: str
    raw_prefix: str  # Firehose Prefix, ends with "/"
    lake_bucket: str
    stream: str
    delivery_stream: str

    @property
    def raw_uri(self) -> str:
        return f"s3://{self.raw_bucket}/{self.raw_prefix.rstrip('/')}"


@dataclass
class BootstrapResult:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


def layout(settings: Settings) -> Layout:
    """Where things go: the s3:// URIs of the settings, or the local deployment's names."""
    names = bucket_names("local")
    raw_bucket, raw_prefix = names["raw"], FIREHOSE_RAW_PREFIX
    if is_s3(settings.raw_uri):
        parsed = urlparse(normalize_uri(settings.raw_uri))
        raw_bucket = parsed.netloc
        path = parsed.path.strip("/")
        raw_prefix = f"{path}/" if path else ""
    lake_bucket = urlparse(normalize_uri(settings.lake_uri)).netloc if is_s3(settings.lake_uri) else names["lake"]
    return Layout(raw_bucket, raw_prefix, lake_bucket, settings.stream_name, settings.delivery_stream_name)


def _code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def bootstrap(settings: Settings, require_endpoint: bool = True) -> BootstrapResult:
    if require_endpoint and not aws.endpoint_url("s3"):
        raise BootstrapError(
            "AWS_ENDPOINT_URL is not set: bootstrap is for the local emulator (make aws-local); "
            "in AWS, Terraform creates these resources (terraform/)"
        )
    where = layout(settings)
    result = BootstrapResult()
    s3 = aws.client("s3")
    for bucket in dict.fromkeys((where.raw_bucket, where.lake_bucket)):
        try:
            s3.head_bucket(Bucket=bucket)
            result.existing.append(f"s3://{bucket}")
            continue
        except Exception as exc:
            if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise
        kwargs = {} if aws.region() == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": aws.region()}}
        s3.create_bucket(Bucket=bucket, **kwargs)
        result.created.append(f"s3://{bucket}")

    kinesis = aws.client("kinesis")
    try:
        kinesis.create_stream(StreamName=where.stream, StreamModeDetails={"StreamMode": "ON_DEMAND"})
        result.created.append(f"kinesis stream {where.stream}")
    except Exception as exc:
        if _code(exc) != "ResourceInUseException":
            raise
        result.existing.append(f"kinesis stream {where.stream}")
    kinesis.get_waiter("stream_exists").wait(StreamName=where.stream, WaiterConfig={"Delay": 1, "MaxAttempts": 60})

    firehose = aws.client("firehose")
    try:
        firehose.create_delivery_stream(
            DeliveryStreamName=where.delivery_stream,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": FIREHOSE_ROLE_ARN,
                "BucketARN": f"arn:aws:s3:::{where.raw_bucket}",
                # Firehose appends YYYY/MM/dd/HH/ (UTC) to a prefix without expressions.
                "Prefix": where.raw_prefix,
                "ErrorOutputPrefix": FIREHOSE_ERROR_PREFIX,
                "CompressionFormat": "GZIP",
                "BufferingHints": {"SizeInMBs": 5, "IntervalInSeconds": 60},
            },
        )
        result.created.append(f"firehose delivery stream {where.delivery_stream} -> {where.raw_uri}/")
    except Exception as exc:
        if _code(exc) != "ResourceInUseException":
            raise
        result.existing.append(f"firehose delivery stream {where.delivery_stream}")
    return result
