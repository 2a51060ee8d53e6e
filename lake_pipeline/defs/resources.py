"""The lake resource: one interface whether the lake is local or on S3."""


import dagster as dg

from lake_pipeline.storage.uris import normalize_uri
from lake_pipeline.settings import Settings, env_vars_set, load_settings


class LakeResource(dg.ConfigurableResource):
    """Where the raw landing zone and the lake are, and how batches behave.

    Values come from ``LAKE_*`` environment variables (shown as env vars in the UI)
    or the defaults in settings.py; run config can override any field, which is
    how ``lake ingest --raw/--lake`` works.
    """

    raw_uri: str
    lake_uri: str
    dedupe_horizon_seconds: float
    batch_max_objects: int
    batch_max_bytes: int
    enrich: bool = True
    # Who runs the batch (LAKE_ENGINE: local | ray) and which Ray cluster (LAKE_RAY_ADDRESS).
    engine: str = "local"
    ray_address: str = ""

    def settings(self) -> Settings:
        own = {name: getattr(self, name) for name in type(self).model_fields}
        # Outside a run (e.g. a script holding the resource), EnvVar fields are not resolved yet.
        own = {k: v.get_value() if isinstance(v, dg.EnvVar) else v for k, v in own.items()}
        own["raw_uri"] = normalize_uri(own["raw_uri"])
        own["lake_uri"] = normalize_uri(own["lake_uri"])
        return load_settings().with_overrides(**own)

    @classmethod
    def from_settings(cls, settings: Settings) -> "LakeResource":
        values: dict[str, object] = {name: getattr(settings, name) for name in cls.model_fields}
        values["raw_uri"] = normalize_uri(settings.raw_uri)
        values["lake_uri"] = normalize_uri(settings.lake_uri)
        for name, var in env_vars_set().items():
            if name in ("raw_uri", "lake_uri"):
                values[name] = dg.EnvVar(var)
        return cls(**values)

    @classmethod
    def run_config(cls, settings: Settings) -> dict:
        """Run-config form of ``settings`` (what `lake ingest --raw/--lake` passes to a run)."""
        return {"config": {name: getattr(settings, name) for name in cls.model_fields}}


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"lake": LakeResource.from_settings(load_settings()), "chunk_parser": NO_CHUNK_PARSER})


# A run launched by the sensor, a schedule or the UI parses its own chunks (None here); `lake
# ingest` binds its own ChunkParser instead, which began parsing the batch while Dagster started.
NO_CHUNK_PARSER = dg.ResourceDefinition.none_resource(
    description="The parser of a batch begun by `lake ingest` before the run started (none for other runs)."
)
