"""Tasks (GLUE, MLM): importing this package registers the built-in tasks in ``benchmarks.registry.TASKS``."""

from benchmarks.tasks import glue, mlm  # noqa: F401 - importing them registers the built-ins
