"""`python -m lake_pipeline.cli`: the `lake` command."""

from lake_pipeline.cli.main import run

run()
