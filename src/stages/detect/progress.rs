//! How far 05-detect has scored an open day's events, so that a run scores only the events
//! it has not: `detections/detect_state`, one day record a day.
//!
//! An event's features never change once 03-gold has written them for good (all but the tail
//! part, see `tables::EVENT_TAIL_PART`), and a detector judges each event on its own with a
//! frozen model, so the verdict on an event scored once stands for as long as the models,
//! the settings, operators' verdicts and gold's build of the day are the same. The record
//! names those ([`key_of`]), how many events were scored for good, and which parts of
//! `detections/scores` hold their scores, which the next run carries over unread. The same
//! for sessions, a part of `gold/session_features` at a time: a part 03-gold left as it was
//! (the same bytes: none of its sessions touched, none closed since) is not scored again.
//! Windows — a few thousand rows — are scored again at every run.

use anyhow::Result;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::lake::{Layer, tables};
use crate::stages::Context;

/// The table the record lives in.
const STATE_TABLE: &str = "detect_state";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventsScored {
    /// [`key_of`] the events were scored under.
    pub key: String,
    /// Events of gold's event features scored for good (rows from the first).
    pub events: u64,
    /// The parts of `detections/scores` (their positions in the partition) that hold those
    /// events' scores.
    pub score_parts: Vec<usize>,
    /// The session parts scored, each with the scores parts that hold its sessions' scores.
    #[serde(default)]
    pub sessions: Vec<ScoredSessions>,
}

/// A session part of gold scored by a run: its content's digest, and the scores parts of
/// its sessions (the ensemble's included).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScoredSessions {
    pub digest: String,
    pub score_parts: Vec<usize>,
}

/// What verdicts on events depend on besides their features: gold's build of the day, the
/// models, operators' verdicts and the detection settings. `None` when gold built the day
/// whole (it keeps no build to carry on from): every event is scored.
pub fn key_of(
    ctx: &Context,
    date: NaiveDate,
    models: &str,
    verdicts: &str,
) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct GoldBuild {
        #[serde(default)]
        build_id: String,
    }
    let Some(text) = ctx
        .lake
        .day_record(Layer::Gold, tables::BUILD_STATE, &ctx.source, date)?
    else {
        return Ok(None);
    };
    let Ok(build) = serde_json::from_str::<GoldBuild>(&text) else {
        return Ok(None);
    };
    if build.build_id.is_empty() {
        return Ok(None);
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(
        format!(
            "{}|{models}|{verdicts}|{:?}|{:?}|{:?}",
            build.build_id, ctx.settings.detectors, ctx.settings.detect, ctx.resolved.granularities
        )
        .as_bytes(),
    );
    Ok(Some(
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect(),
    ))
}

impl EventsScored {
    /// What the last run scored of `date` under `key`, if it still holds: gold has at least
    /// those events for good, and the scores partition the parts named.
    pub fn of(
        ctx: &Context,
        date: NaiveDate,
        key: &str,
        stable_events: u64,
    ) -> Result<Option<Self>> {
        let Some(text) = ctx
            .lake
            .day_record(Layer::Detections, STATE_TABLE, &ctx.source, date)
            .ok()
            .flatten()
        else {
            return Ok(None);
        };
        let Ok(scored) = serde_json::from_str::<Self>(&text) else {
            return Ok(None);
        };
        let parts = ctx
            .lake
            .part_files(Layer::Detections, tables::SCORES, &ctx.source, date)?
            .len();
        Ok((scored.key == key
            && scored.events <= stable_events
            && scored
                .score_parts
                .iter()
                .chain(scored.sessions.iter().flat_map(|s| &s.score_parts))
                .all(|&p| p < parts))
        .then_some(scored))
    }

    pub fn save(&self, ctx: &Context, date: NaiveDate) -> Result<()> {
        let text = serde_json::to_string(self)?;
        ctx.lake
            .commit_day_record(Layer::Detections, STATE_TABLE, &ctx.source, date, &text)
    }
}

/// Events of `date`'s gold event features written for good (all but the tail part's).
pub fn stable_events(ctx: &Context, date: NaiveDate) -> Result<u64> {
    let files: Vec<_> = ctx
        .lake
        .part_files(Layer::Gold, tables::EVENT_FEATURES, &ctx.source, date)?
        .into_iter()
        .filter(|f| f.file_name().is_none_or(|n| n != tables::EVENT_TAIL_PART))
        .collect();
    crate::lake::Lake::row_count(&files)
}
