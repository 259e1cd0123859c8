-- What loglake has told each alert receiver about each incident: one firing notice per
-- incident (again only when its severity rises), one resolved notice once an operator has
-- closed it. A notice that could not be delivered keeps sent_at empty, its attempts and last
-- error, and is tried again after the next 05-detect.
CREATE TABLE IF NOT EXISTS alerts (
    incident_id TEXT NOT NULL REFERENCES incidents (incident_id) ON DELETE CASCADE,
    receiver    TEXT NOT NULL,
    notice      TEXT NOT NULL CHECK (notice IN ('firing', 'resolved')),
    severity    TEXT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    sent_at     TIMESTAMPTZ,
    last_error  TEXT,
    PRIMARY KEY (incident_id, receiver, notice)
);
