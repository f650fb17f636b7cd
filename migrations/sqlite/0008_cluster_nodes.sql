-- The nodes of one platform (several `containerpub serve` on one PostgreSQL store): each writes
-- its heartbeat here every few seconds. A node whose heartbeat is older than a few beats is
-- gone; `/healthz` lists the live ones as peers.
CREATE TABLE cluster_nodes (
    node_id      TEXT PRIMARY KEY,
    address      TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
