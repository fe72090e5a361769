"""Durable storage of the core: tables, engine set-up and small query helpers."""

from routing.storage.database import Database, create_database
from routing.storage.tables import metadata

__all__ = ["Database", "create_database", "metadata"]
