-- Several nodes on one store. An archive lives in the database too, so a node that never saw the
-- deploy can fetch it: cut into chunks (content-addressed by the archive's SHA-256, so one
-- archive deployed twice is stored once), read and written one chunk at a time.
-- `artifacts.chunks` is set once every chunk is in: until then the archive is not there.
CREATE TABLE artifact_chunks (
    sha256 TEXT NOT NULL,
    seq    BIGINT NOT NULL,
    data   BYTEA NOT NULL,
    PRIMARY KEY (sha256, seq)
);
ALTER TABLE artifacts ADD COLUMN chunks BIGINT;

-- Bumped by every activation (deploy, rollback, a secret's change): a node whose routed
-- revision is older prepares the function again.
ALTER TABLE functions ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
