"""Usage metering: one record per finished job (tenant, day, operation, tier, final status,
pages, input bytes, CPU seconds), written once at the job's end by whoever ended it, and the
totals read from those records (:mod:`.totals`). Embedded mode keeps the records in its
SQLite database, Kubernetes mode in the object store (:mod:`.objects`)."""
