"""tidings storage backend on PostgreSQL."""
