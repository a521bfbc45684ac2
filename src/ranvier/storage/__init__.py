"""Database layer: named sync transaction functions run on SQLite or PostgreSQL.

See `database.py` for the threading model and `migrations.py` for schema deltas.
"""
