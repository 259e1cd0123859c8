-- Who may call `loglake serve`: one row per API token (`loglake tokens create`). Only the
-- SHA-256 of the token's secret is kept, so the table read by an attacker gives no way in;
-- the secret is shown once, when the token is made. `name` is whom the token speaks for: a
-- verdict given with it is recorded as theirs.
CREATE TABLE IF NOT EXISTS api_tokens (
    token_id    TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    -- Comma-separated: read, score, feedback.
    scopes      TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);
-- Analysts' read-only role sees every table by default (0003); not this one.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'loglake_reader') THEN
        REVOKE ALL ON api_tokens FROM loglake_reader;
    END IF;
END
$$;
