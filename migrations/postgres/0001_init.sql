-- loglake schema, PostgreSQL dialect. The SQLite twin in migrations/sqlite/ keeps the same
-- tables, columns and views so that the SQL users write against them works on both.

CREATE TABLE IF NOT EXISTS pipeline_runs (
    id               BIGSERIAL PRIMARY KEY,
    run_id           TEXT NOT NULL,
    stage            TEXT NOT NULL,
    source           TEXT NOT NULL,
    batch_dates      TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    started_at       TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ,
    duration_ms      BIGINT,
    rows_in          BIGINT,
    rows_out         BIGINT,
    rows_quarantined BIGINT,
    message          TEXT,
    error            TEXT
);
CREATE INDEX IF NOT EXISTS pipeline_runs_started ON pipeline_runs (started_at);

CREATE TABLE IF NOT EXISTS models (
    model_version TEXT PRIMARY KEY,
    source        TEXT NOT NULL,
    granularity   TEXT NOT NULL,
    detector      TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    train_from    DATE NOT NULL,
    train_to      DATE NOT NULL,
    train_rows    BIGINT NOT NULL,
    features      TEXT NOT NULL,
    params        TEXT NOT NULL,
    threshold     DOUBLE PRECISION NOT NULL,
    path          TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS anomalies (
    anomaly_id    TEXT PRIMARY KEY,
    run_id        TEXT NOT NULL,
    detected_at   TIMESTAMPTZ NOT NULL,
    source        TEXT NOT NULL,
    batch_date    DATE NOT NULL,
    granularity   TEXT NOT NULL CHECK (granularity IN ('window', 'session', 'event')),
    entity_key    TEXT NOT NULL,
    window_start  TIMESTAMPTZ NOT NULL,
    window_end    TIMESTAMPTZ NOT NULL,
    detector      TEXT NOT NULL,
    score         DOUBLE PRECISION NOT NULL,
    threshold     DOUBLE PRECISION NOT NULL,
    severity      TEXT NOT NULL,
    reason        TEXT NOT NULL,
    details       JSONB NOT NULL,
    model_version TEXT NOT NULL,
    incident_id   TEXT
);
CREATE INDEX IF NOT EXISTS anomalies_window ON anomalies (source, window_start);
CREATE INDEX IF NOT EXISTS anomalies_batch ON anomalies (source, batch_date);

-- The last seven days of anomalies, newest first: what an operator looks at first.
CREATE OR REPLACE VIEW recent_anomalies AS
SELECT anomaly_id, source, granularity, entity_key, window_start, window_end, detector,
       score, threshold, severity, reason, model_version
FROM anomalies
WHERE window_start >= (SELECT max(window_start) FROM anomalies) - INTERVAL '7 days'
ORDER BY window_start DESC, score DESC;
