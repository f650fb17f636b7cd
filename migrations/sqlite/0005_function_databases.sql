-- Per-function PostgreSQL roles and schemas (gateway/src/function_database.rs): the role's
-- password is sealed like a secret; the clear password is never stored.
CREATE TABLE function_databases (
    function_id     TEXT PRIMARY KEY REFERENCES functions(id) ON DELETE CASCADE,
    role            TEXT NOT NULL UNIQUE,
    sealed_password TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
