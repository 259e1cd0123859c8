-- Operations: stage runs that had nothing to do are recorded as 'skipped'; views for the
-- questions operators and analysts ask most. (SQLite has no roles: the embedded database is
-- as readable as its file; analysts who need a read-only login use PostgreSQL.)

-- SQLite cannot alter a CHECK constraint: rebuild the table with the new status list.
CREATE TABLE pipeline_runs_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id           TEXT NOT NULL,
    stage            TEXT NOT NULL,
    source           TEXT NOT NULL,
    batch_dates      TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'skipped', 'failed')),
    started_at       TEXT NOT NULL,
    finished_at      TEXT,
    duration_ms      INTEGER,
    rows_in          INTEGER,
    rows_out         INTEGER,
    rows_quarantined INTEGER,
    message          TEXT,
    error            TEXT
);
INSERT INTO pipeline_runs_new SELECT * FROM pipeline_runs;
DROP TABLE pipeline_runs;
ALTER TABLE pipeline_runs_new RENAME TO pipeline_runs;
CREATE INDEX IF NOT EXISTS pipeline_runs_started ON pipeline_runs (started_at);

DROP VIEW IF EXISTS recent_anomalies;
CREATE VIEW recent_anomalies AS
SELECT anomaly_id, source, json_extract(details, '$.service') AS service, granularity,
       entity_key, window_start, window_end, detector, score, threshold, severity, reason,
       incident_id, model_version
FROM anomalies
WHERE window_start >= datetime((SELECT max(window_start) FROM anomalies), '-7 days')
ORDER BY window_start DESC, score DESC;

DROP VIEW IF EXISTS anomalies_per_day;
CREATE VIEW anomalies_per_day AS
SELECT date(window_start) AS day, source,
       coalesce(json_extract(details, '$.service'), '') AS service, granularity, detector,
       count(*) AS anomalies,
       sum(severity IN ('high', 'critical')) AS high_or_critical,
       max(score / nullif(threshold, 0)) AS max_score_ratio
FROM anomalies
GROUP BY 1, 2, 3, 4, 5;

DROP VIEW IF EXISTS open_incidents;
CREATE VIEW open_incidents AS
SELECT incident_id, source, service, started_at, ended_at, severity, anomalies, repeats,
       detectors, title, batch_date
FROM incidents
WHERE status = 'open'
ORDER BY started_at DESC;

DROP VIEW IF EXISTS latest_stage_runs;
CREATE VIEW latest_stage_runs AS
SELECT source, stage, status, batch_dates, started_at, duration_ms, rows_in, rows_out,
       rows_quarantined, message, error
FROM pipeline_runs AS r
WHERE id = (SELECT max(id) FROM pipeline_runs AS l WHERE l.source = r.source AND l.stage = r.stage)
ORDER BY source, stage;
