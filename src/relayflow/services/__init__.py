"""Use cases: the only layer that combines the engine, storage and delivery."""
