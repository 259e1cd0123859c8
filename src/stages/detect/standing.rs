//! Verdicts that stand. A run every few minutes scores the day's windows and sessions again;
//! an entity that was already closed when an earlier run judged it keeps that run's verdict —
//! its anomaly row as it was, or no anomaly — even if events that arrived later than
//! `[gold] allowed_lateness_minutes` would now score it otherwise. 05-detect records the
//! closing it judged by and the models it judged with (`detections/judged`) to know which
//! entities those were. New models (a retrain, say after operators' verdicts) judge the day
//! afresh: what stands is a verdict of the same models.

use anyhow::Result;
use chrono::NaiveDate;

use crate::lake::Layer;
use crate::records::AnomalyRow;
use crate::stages::Context;
use crate::stages::closing::Closing;

/// The table of the closing each day was last judged by (one row a day).
const JUDGED: &str = "judged";

/// The last run's judgement of a day: the closing it used and its final anomalies.
pub struct Previous {
    closing: Closing,
    final_rows: Vec<AnomalyRow>,
}

impl Previous {
    /// What the last run of 05-detect judged `date` by, from its record and the anomalies it
    /// left (`last`); `None` when none recorded it, or when it judged with other `models`
    /// (their versions, as [`record`] takes them).
    pub fn of(
        ctx: &Context,
        date: NaiveDate,
        models: &str,
        last: &[AnomalyRow],
    ) -> Result<Option<Self>> {
        let Some(text) = ctx
            .lake
            .day_record(Layer::Detections, JUDGED, &ctx.source, date)?
        else {
            return Ok(None);
        };
        let Ok(judged) = serde_json::from_str::<Judged>(&text) else {
            return Ok(None);
        };
        if judged.models != models {
            return Ok(None);
        }
        let final_rows = last.iter().filter(|r| !r.provisional).cloned().collect();
        Ok(Some(Self {
            closing: judged.closing,
            final_rows,
        }))
    }

    /// This run's `found` with every window and session the last run judged closed as that
    /// run had it: its anomaly row as it was, or none.
    pub fn keep(self, found: Vec<AnomalyRow>) -> Vec<AnomalyRow> {
        let closing = self.closing;
        let mut rows: Vec<AnomalyRow> = found
            .into_iter()
            .filter(|r| !judged_final(&closing, r))
            .collect();
        rows.extend(
            self.final_rows
                .into_iter()
                .filter(|r| judged_final(&closing, r)),
        );
        rows.sort_by(|a, b| a.anomaly_id.cmp(&b.anomaly_id));
        rows
    }
}

impl Previous {
    /// Whether the last run's verdict on `finding`'s window or session stands (it judged it
    /// closed): this run's finding on it gives way to that verdict.
    pub fn stands(&self, finding: &crate::detectors::Finding) -> bool {
        use crate::detectors::Granularity;
        match finding.granularity {
            Granularity::Window => self.closing.window_closed(finding.end_ms),
            Granularity::Session => self.closing.session_closed(finding.end_ms),
            Granularity::Event => false,
        }
    }
}

/// Whether a run that judged by `closing` judged `row`'s window or session closed (events are
/// always judged as they come, and score the same at every run).
fn judged_final(closing: &Closing, row: &AnomalyRow) -> bool {
    let end = row.window_end.timestamp_millis();
    match row.granularity.as_str() {
        "window" => closing.window_closed(end),
        "session" => closing.session_closed(end),
        _ => false,
    }
}

/// What a day was judged by, as `detections/judged` keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Judged {
    closing: Closing,
    /// The models' versions, comma-separated.
    models: String,
}

/// Record the closing `date` was judged by, and the `models` (versions, comma-separated).
pub fn record(ctx: &Context, date: NaiveDate, closing: &Closing, models: &str) -> Result<()> {
    let judged = Judged {
        closing: *closing,
        models: models.to_string(),
    };
    ctx.lake.commit_day_record(
        Layer::Detections,
        JUDGED,
        &ctx.source,
        date,
        &serde_json::to_string(&judged)?,
    )
}
