"""Delta tables of one lake: paths, idempotent appends, reads."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, WriterProperties, write_deltalake
from deltalake.exceptions import DeltaError

from lake_pipeline.lake.aws import delta_storage_options
from lake_pipeline.lake.storage import StorageError, join, normalize_uri, open_storage
from lake_pipeline.settings import Settings

# Delta "txn" application id: a table whose txn version is >= a batch id already holds that batch.
INGEST_APP_ID = "lake_pipeline.ingest"


def writer_properties() -> WriterProperties:
    # Level 1: micro-batch files are short-lived (compaction rewrites them), so speed wins.
    return WriterProperties(compression="ZSTD", compression_level=1)


@dataclass(frozen=True)
class Lake:
    """The lake root plus how to reach it."""

    uri: str
    storage_options: dict[str, str] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Lake:
        uri = normalize_uri(settings.lake_uri)
        return cls(uri, delta_storage_options(uri, settings.s3_locking, settings.dynamodb_lock_table))

    def table_uri(self, name: str) -> str:
        return join(self.uri, name)

    def exists(self, name: str) -> bool:
        try:
            return DeltaTable.is_deltatable(self.table_uri(name), storage_options=self.storage_options)
        except Exception as exc:  # object_store errors surface as generic exceptions
            raise StorageError(f"cannot reach the lake at {self.uri}: {exc}") from exc

    def table(self, name: str) -> DeltaTable | None:
        if not self.exists(name):
            return None
        return DeltaTable(self.table_uri(name), storage_options=self.storage_options)

    def check_writable(self) -> None:
        storage = open_storage(self.uri)
        storage.check_writable()

    def batch_committed(self, name: str, batch_id: int) -> bool:
        table = self.table(name)
        if table is None:
            return False
        version = table.transaction_version(INGEST_APP_ID)
        return version is not None and version >= batch_id

    def append(
        self,
        name: str,
        data: pa.Table,
        *,
        batch_id: int | None = None,
        partition_by: list[str] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> bool:
        """Append ``data`` in one commit. With ``batch_id``, the commit is idempotent:
        a table that already holds the batch is left alone (returns False)."""
        if batch_id is not None and self.batch_committed(name, batch_id):
            return False
        txns = [Transaction(INGEST_APP_ID, batch_id)] if batch_id is not None else None
        try:
            write_deltalake(
                self.table_uri(name),
                data,
                mode="append",
                partition_by=partition_by,
                storage_options=self.storage_options,
                writer_properties=writer_properties(),
                commit_properties=CommitProperties(app_transactions=txns, custom_metadata=metadata),
            )
        except (OSError, DeltaError) as exc:
            raise StorageError(f"cannot write Delta table {self.table_uri(name)}: {exc}") from exc
        return True

    def scan(self, name: str) -> pl.LazyFrame | None:
        """Lazy Polars scan of a table (None when the table doesn't exist yet)."""
        table = self.table(name)
        if table is None:
            return None
        return pl.scan_delta(table)

    def read_arrow(self, name: str, columns: list[str] | None = None) -> pa.Table | None:
        table = self.table(name)
        if table is None:
            return None
        return table.to_pyarrow_table(columns=columns)
