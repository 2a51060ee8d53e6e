"""What the Dagster wiring shares: asset keys, the arrival-hour partitions, run tags of a
batch, and a check outcome as Dagster's result. No definitions live here."""

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from lake_pipeline.ingest.firehose import key_hour
from lake_pipeline.quality.rules import CheckOutcome
from lake_pipeline.settings import EVENTS_TABLE, QUARANTINE_TABLE, Settings, load_settings
from lake_pipeline.storage.errors import StorageError
from lake_pipeline.storage.objects import LocalStorage, Storage, open_storage

RAW_LANDING_ZONE = dg.AssetKey("raw_landing_zone")
EVENTS = dg.AssetKey(EVENTS_TABLE)
QUARANTINE = dg.AssetKey(QUARANTINE_TABLE)

# Dagster partitions = Firehose arrival hours (the YYYY/MM/dd/HH/ key prefix), not event time:
# materializing hour H ingests the raw objects that arrived in H. Their keys look like
# "2025-11-20-13:00" whatever the first partition is.
ARRIVAL_HOUR_FORMAT = "%Y-%m-%d-%H:%M"




def first_landing_hour(raw: Storage) -> datetime | None:
    """The earliest arrival hour that holds an object, or None (nothing landed, or no landing zone).

    Cheap whatever the landing zone's size: on S3 the first key of a listing (keys come in
    order, and the layout's order is time order); on disk the first non-empty
    YYYY/MM/dd/HH directory, found walking the sorted names.
    """
    if isinstance(raw, LocalStorage):
        return _first_local_hour(raw.root, []) if raw.root.is_dir() else None
    for obj in raw.list():  # S3: stops at the first key of the layout (normally the very first)
        if (hour := key_hour(obj.key)) is not None:
            return hour
    return None


def _first_local_hour(path: Path, parts: list[str]) -> datetime | None:
    """Depth-first over YYYY, MM, dd, HH directory names in order; ``parts``: the names above ``path``."""
    if len(parts) == 4:  # an hour directory: it counts when it holds an object (not only a temporary file)
        return key_hour("/".join([*parts, ""])) if any(not n.startswith(".") for n in os.listdir(path)) else None
    width = 4 if not parts else 2
    names = sorted(n for n in os.listdir(path) if len(n) == width and n.isdigit() and (path / n).is_dir())
    for name in names:
        if (found := _first_local_hour(path / name, [*parts, name])) is not None:
            return found
    return None


# The first partition when there is no landing zone at all to look at (a directory that does not
# exist, a bucket that can't be listed): the project's first arrival hours. Not reached by `make
# dev` (it creates the demo's landing zone) nor by a deployment (Terraform creates the bucket).
NO_LANDING_ZONE_START = datetime(2025, 11, 1, tzinfo=UTC)


def arrival_partitions_start(settings: Settings, now: datetime | None = None) -> datetime:
    """The first arrival-hour partition: ``LAKE_ARRIVAL_PARTITIONS_START`` if set; else the
    landing zone's first hour; else, while nothing has landed, the oldest hour the landing sensor
    lists on its ticks (so whatever lands from now on has a partition); and
    :data:`NO_LANDING_ZONE_START` when there is no landing zone to look at."""
    explicit = settings.arrival_start_hour()
    if explicit is not None:
        return explicit
    raw = open_storage(settings.raw_uri)
    try:
        if not raw.exists():
            return NO_LANDING_ZONE_START
        first = first_landing_hour(raw)
    except StorageError:
        return NO_LANDING_ZONE_START
    if first is not None:
        return first
    hour = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    return hour - timedelta(hours=settings.sensor_lookback_hours)


class ArrivalHours(dg.HourlyPartitionsDefinition):
    """Dagster's hourly partitions, whose list of keys is computed once per hour of the clock.

    In every run Dagster lists all the partitions of `events` twice, only to count them: for
    the batch checks' target materialization, and for the data version of the mart's input
    (`events`, all partitions). A deployment a year old has ~9,000 arrival hours, and each
    listing took 0.10-0.20 s (2026-12-02); the list only changes when a new hour begins (its
    last key), so a process keeps the latest one. Anything that serializes the definition sees a
    plain TimeWindowPartitionsDefinition (Dagster converts subclasses), so only the speed differs.
    """

    def get_partition_keys(self, current_time: datetime | None = None,
                           dynamic_partitions_store=None) -> list[str]:
        with dg.partition_loading_context(current_time, dynamic_partitions_store):
            last = self.get_last_partition_key()
        mine = repr(self)  # records are immutable: the latest list is kept beside, per definition
        cached = _ARRIVAL_KEYS.get(mine)
        if cached is None or cached[0] != last:
            cached = _ARRIVAL_KEYS[mine] = (last, tuple(super().get_partition_keys(current_time,
                                                                                  dynamic_partitions_store)))
        return list(cached[1])


# repr of an ArrivalHours -> (its last key, all its keys) when last listed.
_ARRIVAL_KEYS: dict[str, tuple[str | None, tuple[str, ...]]] = {}


def arrival_hours(settings: Settings | None = None) -> ArrivalHours:
    """The arrival-hour partitions of ``raw_landing_zone``, ``events`` and ``quarantine``, from
    :func:`arrival_partitions_start`. Built where definitions are built, never at import."""
    start = arrival_partitions_start(settings or load_settings())
    # end_offset=1: the hour in progress is a partition too. Firehose objects land in it all
    # the time, and the sensor ingests them as they land (without it, a landing zone whose
    # objects are all in the current hour could not be ingested in a partitioned run).
    return ArrivalHours(start_date=start.strftime(ARRIVAL_HOUR_FORMAT), timezone="UTC", end_offset=1)


def batch_run_tags(keys: list[str], partitions: dg.TimeWindowPartitionsDefinition | None = None) -> dict[str, str]:
    """Run tags naming the arrival-hour partitions a batch of raw keys belongs to.

    Keys outside the Firehose layout have no arrival hour, and keys older than the first
    partition have no partition; such a batch runs unpartitioned. ``partitions``: the
    definitions' arrival hours (by default :func:`arrival_hours` of the current settings).
    """
    partitions = partitions or arrival_hours()
    hours = [key_hour(k) for k in keys]
    if not hours or any(h is None or h < partitions.start for h in hours):
        return {}  # outside the layout, or older than the first partition: an unpartitioned run
    last = partitions.get_last_partition_window()
    if last is None or max(hours) >= last.end:
        return {}  # a key from a later hour than the clock's (a producer's skewed clock): unpartitioned
    fmt = ARRIVAL_HOUR_FORMAT
    return {
        "dagster/asset_partition_range_start": min(hours).strftime(fmt),
        "dagster/asset_partition_range_end": max(hours).strftime(fmt),
    }


def check_result(outcome: CheckOutcome, severity=dg.AssetCheckSeverity.ERROR, **key) -> dg.AssetCheckResult:
    """A check's outcome (quality/rules.py, maintenance/compaction.py, marts/hourly.py) as Dagster's result;
    ``key`` names the check (``check_name``, ``asset_key``) in a multi-asset check."""
    return dg.AssetCheckResult(
        **key,
        passed=outcome.passed,
        severity=severity,
        description=outcome.description,
        metadata=outcome.metadata,
    )
