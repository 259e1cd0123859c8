-- Operations: stage runs that had nothing to do are recorded as 'skipped'; views for the
-- questions operators and analysts ask most; a read-only role for analysts.

ALTER TABLE pipeline_runs DROP CONSTRAINT IF EXISTS pipeline_runs_status_check;
ALTER TABLE pipeline_runs ADD CONSTRAINT pipeline_runs_status_check
    CHECK (status IN ('running', 'succeeded', 'skipped', 'failed'));

-- The last seven days of anomalies (counted back from the newest one, so a lake replayed
-- from old logs still shows something), newest first, with the service they concern.
DROP VIEW IF EXISTS recent_anomalies;
CREATE VIEW recent_anomalies AS
SELECT anomaly_id, source, details->>'service' AS service, granularity, entity_key,
       window_start, window_end, detector, score, threshold, severity, reason, incident_id,
       model_version
FROM anomalies
WHERE window_start >= (SELECT max(window_start) FROM anomalies) - INTERVAL '7 days'
ORDER BY window_start DESC, score DESC;

-- Anomalies per day (of the anomaly, UTC), source, service, granularity and detector.
CREATE OR REPLACE VIEW anomalies_per_day AS
SELECT (window_start AT TIME ZONE 'UTC')::date AS day, source,
       coalesce(details->>'service', '') AS service, granularity, detector,
       count(*) AS anomalies,
       count(*) FILTER (WHERE severity IN ('high', 'critical')) AS high_or_critical,
       max(score / nullif(threshold, 0)) AS max_score_ratio
FROM anomalies
GROUP BY 1, 2, 3, 4, 5;

-- Incidents nobody has acknowledged or closed yet, newest first.
CREATE OR REPLACE VIEW open_incidents AS
SELECT incident_id, source, service, started_at, ended_at, severity, anomalies, repeats,
       detectors, title, batch_date
FROM incidents
WHERE status = 'open'
ORDER BY started_at DESC;

-- The latest run of each stage per source: what ran, when, how long, and why it failed.
CREATE OR REPLACE VIEW latest_stage_runs AS
SELECT DISTINCT ON (source, stage) source, stage, status, batch_dates, started_at,
       duration_ms, rows_in, rows_out, rows_quarantined, message, error
FROM pipeline_runs
ORDER BY source, stage, started_at DESC;

-- Analysts read through the NOLOGIN role loglake_reader: SELECT on every table and view of
-- this schema (including ones later migrations add), nothing else. A person gets it with
--   CREATE ROLE alice LOGIN PASSWORD '…' IN ROLE loglake_reader;
-- Roles belong to the whole cluster, so another database's migration may have created it
-- already; a writer without CREATEROLE cannot, and then a DBA creates it once (README).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'loglake_reader') THEN
        BEGIN
            CREATE ROLE loglake_reader NOLOGIN;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'role loglake_reader not created (the migrating role lacks CREATEROLE): a DBA can run CREATE ROLE loglake_reader NOLOGIN, then 00-init again';
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'loglake_reader') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO loglake_reader', current_schema());
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO loglake_reader', current_schema());
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO loglake_reader', current_schema());
    END IF;
END
$$;
