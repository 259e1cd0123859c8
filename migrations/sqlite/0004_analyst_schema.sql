-- What analysts filter on, as columns with indexes; what the tables promise, as constraints.

-- The service an anomaly concerns: every dashboard filters on it, so a column of its own
-- (until now only inside details), filled for the rows already there.
ALTER TABLE anomalies ADD COLUMN service TEXT NOT NULL DEFAULT '';
UPDATE anomalies SET service = coalesce(json_extract(details, '$.service'), '') WHERE service = '';

CREATE INDEX IF NOT EXISTS anomalies_source_window ON anomalies (source, window_start);
CREATE INDEX IF NOT EXISTS anomalies_incident ON anomalies (incident_id);
CREATE INDEX IF NOT EXISTS anomalies_service ON anomalies (service);
CREATE INDEX IF NOT EXISTS incidents_status ON incidents (status);

-- Severities are the four words loglake writes. SQLite adds no CHECK to an existing table
-- without rebuilding it; triggers hold the same promise.
CREATE TRIGGER IF NOT EXISTS anomalies_severity_insert BEFORE INSERT ON anomalies
WHEN NEW.severity NOT IN ('low', 'medium', 'high', 'critical')
BEGIN SELECT RAISE(ABORT, 'anomalies.severity must be low, medium, high or critical'); END;
CREATE TRIGGER IF NOT EXISTS anomalies_severity_update BEFORE UPDATE OF severity ON anomalies
WHEN NEW.severity NOT IN ('low', 'medium', 'high', 'critical')
BEGIN SELECT RAISE(ABORT, 'anomalies.severity must be low, medium, high or critical'); END;
CREATE TRIGGER IF NOT EXISTS incidents_severity_insert BEFORE INSERT ON incidents
WHEN NEW.severity NOT IN ('low', 'medium', 'high', 'critical')
BEGIN SELECT RAISE(ABORT, 'incidents.severity must be low, medium, high or critical'); END;
CREATE TRIGGER IF NOT EXISTS incidents_severity_update BEFORE UPDATE OF severity ON incidents
WHEN NEW.severity NOT IN ('low', 'medium', 'high', 'critical')
BEGIN SELECT RAISE(ABORT, 'incidents.severity must be low, medium, high or critical'); END;

-- The views read the column now.
DROP VIEW IF EXISTS recent_anomalies;
CREATE VIEW recent_anomalies AS
SELECT anomaly_id, source, service, granularity,
       entity_key, window_start, window_end, detector, score, threshold, severity, reason,
       incident_id, model_version
FROM anomalies
WHERE window_start >= datetime((SELECT max(window_start) FROM anomalies), '-7 days')
ORDER BY window_start DESC, score DESC;

DROP VIEW IF EXISTS anomalies_per_day;
CREATE VIEW anomalies_per_day AS
SELECT date(window_start) AS day, source, service, granularity, detector,
       count(*) AS anomalies,
       sum(severity IN ('high', 'critical')) AS high_or_critical,
       max(score / nullif(threshold, 0)) AS max_score_ratio
FROM anomalies
GROUP BY 1, 2, 3, 4, 5;
