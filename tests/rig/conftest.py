# The rig's own tests use its fixtures; other test dirs import them explicitly
# (see fixtures.py). test_rig.py skips itself where `kubernetes` is missing.
from .fixtures import cluster, namespace  # noqa: F401
