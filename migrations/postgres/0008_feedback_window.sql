-- When the judged finding's window started. A session is named by its key and an event by its
-- file and line, but a window only by its service and start: 04-train needs the start to find
-- the window an operator marked normal among its training rows, after the anomaly row itself
-- has been replaced by a re-run. Verdicts recorded before this column are filled in from the
-- anomalies they name, where those still exist.
ALTER TABLE feedback ADD COLUMN IF NOT EXISTS window_start TIMESTAMPTZ;
UPDATE feedback SET window_start = (
    SELECT a.window_start FROM anomalies a WHERE a.anomaly_id = feedback.subject_id
) WHERE subject = 'anomaly';
