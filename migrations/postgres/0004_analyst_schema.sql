-- What analysts filter on, as columns with indexes; what the tables promise, as constraints.

-- The service an anomaly concerns: every dashboard filters on it, so a column of its own
-- (until now only inside details), filled for the rows already there.
ALTER TABLE anomalies ADD COLUMN IF NOT EXISTS service TEXT NOT NULL DEFAULT '';
UPDATE anomalies SET service = coalesce(details->>'service', '') WHERE service = '';

CREATE INDEX IF NOT EXISTS anomalies_source_window ON anomalies (source, window_start);
CREATE INDEX IF NOT EXISTS anomalies_incident ON anomalies (incident_id);
CREATE INDEX IF NOT EXISTS anomalies_service ON anomalies (service);
CREATE INDEX IF NOT EXISTS incidents_status ON incidents (status);

-- Severities are the four words loglake writes.
ALTER TABLE anomalies DROP CONSTRAINT IF EXISTS anomalies_severity_check;
ALTER TABLE anomalies ADD CONSTRAINT anomalies_severity_check
    CHECK (severity IN ('low', 'medium', 'high', 'critical'));
ALTER TABLE incidents DROP CONSTRAINT IF EXISTS incidents_severity_check;
ALTER TABLE incidents ADD CONSTRAINT incidents_severity_check
    CHECK (severity IN ('low', 'medium', 'high', 'critical'));

-- A model's parameters and feature names are JSON documents: queryable as such.
ALTER TABLE models ALTER COLUMN params TYPE JSONB USING params::jsonb;
ALTER TABLE models ALTER COLUMN features TYPE JSONB USING features::jsonb;

-- The views read the column now.
CREATE OR REPLACE VIEW recent_anomalies AS
SELECT anomaly_id, source, service, granularity, entity_key,
       window_start, window_end, detector, score, threshold, severity, reason, incident_id,
       model_version
FROM anomalies
WHERE window_start >= (SELECT max(window_start) FROM anomalies) - INTERVAL '7 days'
ORDER BY window_start DESC, score DESC;

CREATE OR REPLACE VIEW anomalies_per_day AS
SELECT (window_start AT TIME ZONE 'UTC')::date AS day, source, service, granularity, detector,
       count(*) AS anomalies,
       count(*) FILTER (WHERE severity IN ('high', 'critical')) AS high_or_critical,
       max(score / nullif(threshold, 0)) AS max_score_ratio
FROM anomalies
GROUP BY 1, 2, 3, 4, 5;
