-- One anomaly is the ensemble's verdict on an entity. The findings of the detectors it
-- weighed are its evidence — votes — kept for each detector's evaluation but counted nowhere:
-- before, a finding and the verdict it led to were two anomalies. With the ensemble turned
-- off every finding is a verdict.
ALTER TABLE anomalies ADD COLUMN vote BOOLEAN NOT NULL DEFAULT 0;

DROP VIEW IF EXISTS final_anomalies;
CREATE VIEW final_anomalies AS SELECT * FROM anomalies WHERE NOT provisional AND NOT vote;

DROP VIEW IF EXISTS recent_anomalies;
CREATE VIEW recent_anomalies AS
SELECT anomaly_id, source, service, granularity,
       entity_key, window_start, window_end, detector, score, threshold, severity, reason,
       incident_id, model_version
FROM anomalies
WHERE NOT vote
  AND window_start >= datetime((SELECT max(window_start) FROM anomalies), '-7 days')
ORDER BY window_start DESC, score DESC;

DROP VIEW IF EXISTS anomalies_per_day;
CREATE VIEW anomalies_per_day AS
SELECT date(window_start) AS day, source, service, granularity, detector,
       count(*) AS anomalies,
       sum(severity IN ('high', 'critical')) AS high_or_critical,
       max(score / nullif(threshold, 0)) AS max_score_ratio
FROM anomalies
WHERE NOT vote
GROUP BY 1, 2, 3, 4, 5;
