"""The runner: runs one engine on one job's input and reports by the runner contract."""
