-- An anomaly's incident is a row of incidents. 05-detect writes a batch's incidents before
-- its anomalies, in one transaction; an incident that goes (a re-run no longer forms it,
-- retention removes it) leaves the anomalies that pointed at it without one rather than
-- pointing at nothing. (loglake's connections turn SQLite's foreign keys on.)
--
-- Not a foreign key: anomalies.model_version. Retention keeps each detector's latest model
-- but removes older versions whose anomalies may still be kept, and the version names the
-- model's file in the lake, which stays the record.
--
-- SQLite adds no constraint to an existing table: the table is rebuilt, its rows copied
-- (links to removed incidents cleared), and its indexes, triggers and views made again —
-- without anomalies_window, which indexed the same columns as anomalies_source_window.

DROP VIEW IF EXISTS recent_anomalies;
DROP VIEW IF EXISTS anomalies_per_day;

CREATE TABLE anomalies_new (
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
    incident_id   TEXT REFERENCES incidents (incident_id) ON DELETE SET NULL,
    service       TEXT NOT NULL DEFAULT ''
);
INSERT INTO anomalies_new
SELECT anomaly_id, run_id, detected_at, source, batch_date, granularity, entity_key,
       window_start, window_end, detector, score, threshold, severity, reason, details,
       model_version,
       CASE WHEN EXISTS (SELECT 1 FROM incidents i WHERE i.incident_id = anomalies.incident_id)
            THEN incident_id END,
       service
FROM anomalies;
DROP TABLE anomalies;
ALTER TABLE anomalies_new RENAME TO anomalies;

CREATE INDEX IF NOT EXISTS anomalies_batch ON anomalies (source, batch_date);
CREATE INDEX IF NOT EXISTS anomalies_source_window ON anomalies (source, window_start);
CREATE INDEX IF NOT EXISTS anomalies_incident ON anomalies (incident_id);
CREATE INDEX IF NOT EXISTS anomalies_service ON anomalies (service);

CREATE TRIGGER IF NOT EXISTS anomalies_severity_insert BEFORE INSERT ON anomalies
WHEN NEW.severity NOT IN ('low', 'medium', 'high', 'critical')
BEGIN SELECT RAISE(ABORT, 'anomalies.severity must be low, medium, high or critical'); END;
CREATE TRIGGER IF NOT EXISTS anomalies_severity_update BEFORE UPDATE OF severity ON anomalies
WHEN NEW.severity NOT IN ('low', 'medium', 'high', 'critical')
BEGIN SELECT RAISE(ABORT, 'anomalies.severity must be low, medium, high or critical'); END;

CREATE VIEW recent_anomalies AS
SELECT anomaly_id, source, service, granularity,
       entity_key, window_start, window_end, detector, score, threshold, severity, reason,
       incident_id, model_version
FROM anomalies
WHERE window_start >= datetime((SELECT max(window_start) FROM anomalies), '-7 days')
ORDER BY window_start DESC, score DESC;

CREATE VIEW anomalies_per_day AS
SELECT date(window_start) AS day, source, service, granularity, detector,
       count(*) AS anomalies,
       sum(severity IN ('high', 'critical')) AS high_or_critical,
       max(score / nullif(threshold, 0)) AS max_score_ratio
FROM anomalies
GROUP BY 1, 2, 3, 4, 5;
