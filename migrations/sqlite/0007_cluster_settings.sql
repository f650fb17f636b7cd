-- Settings every node of one platform must share, kept where every node reads them: the token
-- signing secret when none is configured (each node generating its own would make a token
-- from one node worthless on the next). The first node to start writes it; the others read it.
CREATE TABLE cluster_settings (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
