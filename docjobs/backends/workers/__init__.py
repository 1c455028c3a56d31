"""Warm runner workers and their scratch directories, shared by both backends: the embedded
supervisor runs every attempt on them, the Kubernetes backend its claimed sync jobs."""
