"""State: sqlmodel tables and database sessions (SQLite by default, any SQLAlchemy URL)."""

from app.store.db import Database

__all__ = ["Database"]
