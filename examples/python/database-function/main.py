"""A database function: reports whether the platform gave it a database and under what limits.

The server sets DATABASE_URL (from FUNCTION_DATABASE_URL) and DB_TIMEOUT_MS for every function
when a function database is configured. Connect with any PostgreSQL client (psycopg, asyncpg),
and keep statements under DB_TIMEOUT_MS: the server enforces it.
"""
import os
from urllib.parse import urlsplit


def handler(body):
    url = os.environ.get("DATABASE_URL")
    if not url:
        return {"statusCode": 503, "body": {"error": "no function database is configured on this server"}}
    parts = urlsplit(url)
    return {
        "database": parts.path.lstrip("/"),
        "host": parts.hostname,
        "statement_timeout_ms": int(os.environ.get("DB_TIMEOUT_MS", "0")),
    }
