-- A verdict on a window or session that had not closed when it was judged (a batch run every
-- few minutes sees both before they end). It may change at the next run, so it belongs to no
-- incident and raises no alert; once the entity closes, its verdict is final.
ALTER TABLE anomalies ADD COLUMN provisional BOOLEAN NOT NULL DEFAULT 0;
CREATE VIEW final_anomalies AS SELECT * FROM anomalies WHERE NOT provisional;
