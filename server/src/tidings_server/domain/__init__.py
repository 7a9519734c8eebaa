"""The domain: hooks, triggers, events and the rules that govern them (no I/O, no grpc)."""
