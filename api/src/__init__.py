"""The HTTP API: both seed route families on one backend."""
