-- An anomaly's incident is a row of incidents. 05-detect writes a batch's incidents before
-- its anomalies, in one transaction; an incident that goes (a re-run no longer forms it,
-- retention removes it) leaves the anomalies that pointed at it without one rather than
-- pointing at nothing.
--
-- Not a foreign key: anomalies.model_version. Retention keeps each detector's latest model
-- but removes older versions whose anomalies may still be kept, and the version names the
-- model's file in the lake, which stays the record.

-- Links an earlier version left pointing at a removed incident.
UPDATE anomalies SET incident_id = NULL
WHERE incident_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.incident_id = anomalies.incident_id);

ALTER TABLE anomalies DROP CONSTRAINT IF EXISTS anomalies_incident_id_fkey;
ALTER TABLE anomalies ADD CONSTRAINT anomalies_incident_id_fkey
    FOREIGN KEY (incident_id) REFERENCES incidents (incident_id) ON DELETE SET NULL;

-- The same columns as anomalies_source_window (0004): one index is enough.
DROP INDEX IF EXISTS anomalies_window;
