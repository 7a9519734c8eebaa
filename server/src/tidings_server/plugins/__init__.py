"""The plugin system: hook specifications, the manager facade and the built-in plugins' glue."""
