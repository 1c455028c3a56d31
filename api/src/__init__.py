"""The HTTP API: both route families (the jobs API and the parse API) on one backend."""
