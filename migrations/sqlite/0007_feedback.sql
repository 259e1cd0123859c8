-- Operators' verdicts, with who, when and why: an anomaly marked normal or confirmed
-- (`loglake anomalies mark`), an incident acknowledged or closed (`loglake incidents`).
-- The finding's identity is copied (detector, granularity, entity, leading evidence) rather
-- than referenced: a re-run replaces anomaly rows, and the verdict must outlive them.
CREATE TABLE IF NOT EXISTS feedback (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    subject     TEXT NOT NULL CHECK (subject IN ('anomaly', 'incident')),
    subject_id  TEXT NOT NULL,
    source      TEXT NOT NULL,
    verdict     TEXT NOT NULL CHECK (verdict IN ('normal', 'anomaly', 'acknowledged', 'closed')),
    detector    TEXT,
    granularity TEXT,
    entity_key  TEXT,
    evidence    TEXT,
    -- The finding's kind (granularity|lead detector|leading evidence): a "normal" verdict
    -- suppresses later findings of the same detector and kind.
    kind        TEXT,
    by_whom     TEXT NOT NULL,
    at          TEXT NOT NULL,
    note        TEXT
);
CREATE INDEX IF NOT EXISTS feedback_subject ON feedback (subject, subject_id);
