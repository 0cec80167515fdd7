"""Protocols: how a pruned encoder is judged on a task (docs/protocols.md).

Each protocol is a small module that turns (task data, pruned model, recipe, seed) into per-example
predictions of every eval split; the task scores them. Importing this package registers the built-ins
(``finetune``, ``zeroshot``, ``probe``) in ``benchmarks.registry.PROTOCOLS``; plug-ins register through
the entry-point group ``prunebench.protocols`` with ``benchmarks.registry.register_protocol``.
"""

from benchmarks.protocols import finetune, probe, zeroshot  # noqa: F401 - importing them registers the built-ins
