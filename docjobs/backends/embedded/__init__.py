"""Embedded mode: SQLite job store, local object store, warm runner workers, one process."""
