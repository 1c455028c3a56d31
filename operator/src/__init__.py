"""The Kubernetes operator: DocumentJob custom resources reconciled into batch/v1 Jobs."""
