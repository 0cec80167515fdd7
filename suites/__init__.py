"""Built-in suite YAML files (a package so they install with the wheel)."""
