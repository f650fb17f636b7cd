-- Function secrets: `sealed` is hex of a nonce and the ChaCha20-Poly1305 ciphertext of the value
-- (gateway/src/secrets.rs); the clear value is never stored.
CREATE TABLE function_secrets (
    function_id TEXT NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    sealed      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (function_id, name)
);
