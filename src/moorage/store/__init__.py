"""Persistence: the database (tables, migrations, queries) and the blob store."""
