-- Incidents: anomalies of one service close in time, grouped by 05-detect. One row per
-- incident; anomalies.incident_id points here.
CREATE TABLE IF NOT EXISTS incidents (
    incident_id     TEXT PRIMARY KEY,
    source          TEXT NOT NULL,
    batch_date      TEXT NOT NULL,
    service         TEXT NOT NULL,
    started_at      TEXT NOT NULL,
    ended_at        TEXT NOT NULL,
    anomalies       INTEGER NOT NULL,
    entities        INTEGER NOT NULL,
    -- Anomalies folded into the incident because the same detector already raised the same
    -- kind of finding on it (a spike seen in three consecutive windows is one incident).
    repeats         INTEGER NOT NULL,
    detectors       TEXT NOT NULL,
    severity        TEXT NOT NULL,
    max_score_ratio REAL NOT NULL,
    title           TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'closed'))
);
CREATE INDEX IF NOT EXISTS incidents_started ON incidents (source, started_at);

-- Evaluations written by 06-report --labels: one row per detector and granularity.
CREATE TABLE IF NOT EXISTS evaluations (
    source         TEXT NOT NULL,
    date_from      TEXT NOT NULL,
    date_to        TEXT NOT NULL,
    labels         TEXT NOT NULL,
    detector       TEXT NOT NULL,
    granularity    TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    evaluated_at   TEXT NOT NULL,
    entities       INTEGER NOT NULL,
    positives      INTEGER NOT NULL,
    flagged        INTEGER NOT NULL,
    true_positives INTEGER NOT NULL,
    precision      REAL NOT NULL,
    recall         REAL NOT NULL,
    f1             REAL NOT NULL,
    roc_auc        REAL,
    pr_auc         REAL,
    PRIMARY KEY (source, date_from, date_to, labels, detector, granularity)
);
