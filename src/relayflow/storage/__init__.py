"""Persistence: SQLAlchemy 2 models, sessions and every query (repositories/)."""
