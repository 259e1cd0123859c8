-- loglake schema, SQLite dialect (the embedded default). Same tables, columns and views as
-- migrations/postgres/: timestamps are UTC text 'YYYY-MM-DD HH:MM:SS.sss', which sorts and
-- compares correctly and which SQLite's date functions read; details is JSON text.

CREATE TABLE IF NOT EXISTS pipeline_runs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id           TEXT NOT NULL,
    stage            TEXT NOT NULL,
    source           TEXT NOT NULL,
    batch_dates      TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    started_at       TEXT NOT NULL,
    finished_at      TEXT,
    duration_ms      INTEGER,
    rows_in          INTEGER,
    rows_out         INTEGER,
    rows_quarantined INTEGER,
    message          TEXT,
    error            TEXT
);
CREATE INDEX IF NOT EXISTS pipeline_runs_started ON pipeline_runs (started_at);

CREATE TABLE IF NOT EXISTS models (
    model_version TEXT PRIMARY KEY,
    source        TEXT NOT NULL,
    granularity   TEXT NOT NULL,
    detector      TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    train_from    TEXT NOT NULL,
    train_to      TEXT NOT NULL,
    train_rows    INTEGER NOT NULL,
    features      TEXT NOT NULL,
    params        TEXT NOT NULL,
    threshold     REAL NOT NULL,
    path          TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS anomalies (
    anomaly_id    TEXT PRIMARY KEY,
    run_id        TEXT NOT NULL,
    detected_at   TEXT NOT NULL,
    source        TEXT NOT NULL,
    batch_date    TEXT NOT NULL,
    granularity   TEXT NOT NULL CHECK (granularity IN ('window', 'session', 'event')),
    entity_key    TEXT NOT NULL,
    window_start  TEXT NOT NULL,
    window_end    TEXT NOT NULL,
    detector      TEXT NOT NULL,
    score         REAL NOT NULL,
    threshold     REAL NOT NULL,
    severity      TEXT NOT NULL,
    reason        TEXT NOT NULL,
    details       TEXT NOT NULL,
    model_version TEXT NOT NULL,
    incident_id   TEXT
);
CREATE INDEX IF NOT EXISTS anomalies_window ON anomalies (source, window_start);
CREATE INDEX IF NOT EXISTS anomalies_batch ON anomalies (source, batch_date);

-- The last seven days of anomalies, newest first: what an operator looks at first.
DROP VIEW IF EXISTS recent_anomalies;
CREATE VIEW recent_anomalies AS
SELECT anomaly_id, source, granularity, entity_key, window_start, window_end, detector,
       score, threshold, severity, reason, model_version
FROM anomalies
WHERE window_start >= datetime((SELECT max(window_start) FROM anomalies), '-7 days')
ORDER BY window_start DESC, score DESC;
