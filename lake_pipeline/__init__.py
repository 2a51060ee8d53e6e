"""The event lakehouse pipeline."""

import os

# Polars' allocator (jemalloc) returns freed pages to the OS after 5 s instead of at once, so a
# batch's next chunk reuses them rather than faulting fresh ones in: measured on 1M realistic
# events, 0.7 M fewer page faults and 0.9 s less per `lake ingest`, for ~0.3 GB more peak RSS.
# It must be set before Polars loads; a value the user set wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "background_thread:true,dirty_decay_ms:5000,muzzy_decay_ms:0")
