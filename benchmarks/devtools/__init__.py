"""Developer tools (not used at run time): e.g. ``python -m benchmarks.devtools.imports``."""
