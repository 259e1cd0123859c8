-- Incidents: anomalies of one service close in time, grouped by 05-detect. One row per
-- incident; anomalies.incident_id points here.
CREATE TABLE IF NOT EXISTS incidents (
    incident_id     TEXT PRIMARY KEY,
    source          TEXT NOT NULL,
    batch_date      DATE NOT NULL,
    service         TEXT NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL,
    ended_at        TIMESTAMPTZ NOT NULL,
    anomalies       BIGINT NOT NULL,
    entities        BIGINT NOT NULL,
    -- Anomalies folded into the incident because the same detector already raised the same
    -- kind of finding on it (a spike seen in three consecutive windows is one incident).
    repeats         BIGINT NOT NULL,
    detectors       TEXT NOT NULL,
    severity        TEXT NOT NULL,
    max_score_ratio DOUBLE PRECISION NOT NULL,
    title           TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'closed'))
);
CREATE INDEX IF NOT EXISTS incidents_started ON incidents (source, started_at);

-- Evaluations written by 06-report --labels: one row per detector and granularity.
CREATE TABLE IF NOT EXISTS evaluations (
    source         TEXT NOT NULL,
    date_from      DATE NOT NULL,
    date_to        DATE NOT NULL,
    labels         TEXT NOT NULL,
    detector       TEXT NOT NULL,
    granularity    TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    evaluated_at   TIMESTAMPTZ NOT NULL,
    entities       BIGINT NOT NULL,
    positives      BIGINT NOT NULL,
    flagged        BIGINT NOT NULL,
    true_positives BIGINT NOT NULL,
    precision      DOUBLE PRECISION NOT NULL,
    recall         DOUBLE PRECISION NOT NULL,
    f1             DOUBLE PRECISION NOT NULL,
    roc_auc        DOUBLE PRECISION,
    pr_auc         DOUBLE PRECISION,
    PRIMARY KEY (source, date_from, date_to, labels, detector, granularity)
);
