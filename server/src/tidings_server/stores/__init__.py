"""Storage: the Store interface the core relies on, and the built-in backends."""
