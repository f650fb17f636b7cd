-- ContainerPub schema, SQLite flavour. Times are Unix milliseconds (log lines: microseconds),
-- ids are text, JSON documents are text: the same row shapes as the PostgreSQL schema, so one
-- set of queries serves both stores.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL UNIQUE,
    key_hash     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_keys_user ON api_keys(user_id);

CREATE TABLE artifacts (
    sha256     TEXT PRIMARY KEY,
    size_bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE functions (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    owner_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    public         BOOLEAN NOT NULL,
    active_version BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX functions_owner ON functions(owner_id);

CREATE TABLE function_versions (
    function_id     TEXT NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
    version         BIGINT NOT NULL,
    artifact_sha256 TEXT NOT NULL REFERENCES artifacts(sha256),
    runtime         TEXT NOT NULL,
    entry_file      TEXT NOT NULL,
    entry_mode      TEXT NOT NULL,
    settings        TEXT NOT NULL,
    analysis        TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (function_id, version)
);

-- Invocations and log lines are written in batches after the fact, possibly after their function
-- was deleted: no foreign key (a late batch must not fail), the delete removes them itself.
CREATE TABLE function_invocations (
    id                TEXT PRIMARY KEY,
    function_id       TEXT NOT NULL,
    version           BIGINT NOT NULL,
    outcome           TEXT NOT NULL,
    status            BIGINT NOT NULL,
    error_code        TEXT,
    cold              BOOLEAN NOT NULL,
    queue_us          BIGINT NOT NULL,
    exec_us           BIGINT NOT NULL,
    peak_memory_bytes BIGINT,
    bytes_in          BIGINT NOT NULL,
    bytes_out         BIGINT NOT NULL,
    started_at        BIGINT NOT NULL
);
CREATE INDEX function_invocations_recent ON function_invocations(function_id, started_at);

CREATE TABLE function_logs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    function_id   TEXT NOT NULL,
    version       BIGINT NOT NULL,
    invocation_id TEXT,
    timestamp_us  BIGINT NOT NULL,
    stream        TEXT NOT NULL,
    message       TEXT NOT NULL
);
CREATE INDEX function_logs_recent ON function_logs(function_id, id);
