-- One anomaly is the ensemble's verdict on an entity. The findings of the detectors it
-- weighed are its evidence — votes — kept for each detector's evaluation but counted nowhere:
-- before, a finding and the verdict it led to were two anomalies. With the ensemble turned
-- off every finding is a verdict.
ALTER TABLE anomalies ADD COLUMN vote BOOLEAN NOT NULL DEFAULT FALSE;

CREATE OR REPLACE VIEW final_anomalies AS SELECT * FROM anomalies WHERE NOT provisional AND NOT vote;

CREATE OR REPLACE VIEW recent_anomalies AS
SELECT anomaly_id, source, service, granularity, entity_key,
       window_start, window_end, detector, score, threshold, severity, reason, incident_id,
       model_version
FROM anomalies
WHERE NOT vote
  AND window_start >= (SELECT max(window_start) FROM anomalies) - INTERVAL '7 days'
ORDER BY window_start DESC, score DESC;

CREATE OR REPLACE VIEW anomalies_per_day AS
SELECT (window_start AT TIME ZONE 'UTC')::date AS day, source, service, granularity, detector,
       count(*) AS anomalies,
       count(*) FILTER (WHERE severity IN ('high', 'critical')) AS high_or_critical,
       max(score / nullif(threshold, 0)) AS max_score_ratio
FROM anomalies
WHERE NOT vote
GROUP BY 1, 2, 3, 4, 5;
