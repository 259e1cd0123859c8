//! What 03-gold keeps of an open day between runs, so that a run reads only the silver rows
//! it has not read yet: `gold/build_state/source=<s>/date=<d>/`, one day record holding this
//! JSON document, beside two tables of its own:
//! - `gold/window_partials`: the day's partial window counts (a few thousand rows), from
//!   which every window's features are summed again at each run;
//! - `gold/session_events`: the day's keyed events (key, service, time, level, template), a
//!   part per run, from which a session that new events touch is aggregated again.
//!
//! Silver's rows only grow while a day is open (02-silver appends a part per run), so what
//! gold has read is a count of rows; the record also names the silver parse it read them
//! from (`epoch`), the last row it read, and what its features were built with (`base`):
//! when any of them no longer holds, the day is built again from its first row.
//!
//! The state is committed last, after the parts it describes: a run that dies before it
//! leaves the state of the run before, and the next run writes the same parts again under
//! the same names.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use chrono::NaiveDate;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::lake::{Lake, Layer, tables};
use crate::stages::Context;

/// Bumped when the state's meaning changes: an older state builds its day again.
const VERSION: u32 = 3;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BuildState {
    pub version: u32,
    /// [`base_of`] the features were built with.
    pub base: String,
    /// The silver parse (02-silver's epoch) the rows were read from.
    pub silver_epoch: String,
    /// Silver rows read so far, and the last of them (file, line number).
    pub rows_done: u64,
    pub last_row: Option<(String, u64)>,
    /// Silver's held part (a multi-line event a later run may continue), as
    /// `name:rows:bytes`, when it was read because the day had closed.
    pub held_read: Option<String>,
    /// Names this build of the day, from its first run on: 05-detect, which scores only the
    /// events it has not scored, scores them all again when gold built the day again.
    pub build_id: String,
    /// Runs that wrote parts so far: run `n` writes `part-g<n>-<k>.parquet`.
    pub runs: u32,
    /// Events of each template so far (see `RunningCounts`).
    pub counts: BTreeMap<String, i64>,
}

/// What 02-silver's record of the day says that gold needs: which parse it is, and which part
/// holds the day's last event, which a later run may write again.
#[derive(Debug, Default, Deserialize)]
pub struct SilverProgress {
    #[serde(default)]
    pub epoch: String,
    pub held_part: Option<String>,
}

impl SilverProgress {
    pub fn of(lake: &Lake, source: &str, date: NaiveDate) -> Result<Option<Self>> {
        match lake.day_record(Layer::Silver, tables::PARSE_STATE, source, date)? {
            Some(text) => Ok(Some(
                serde_json::from_str(&text).context("reading 02-silver's record of the day")?,
            )),
            None => Ok(None),
        }
    }
}

impl BuildState {
    /// A day not built yet.
    pub fn new(base: String, silver_epoch: String) -> Self {
        let now = chrono::Utc::now();
        Self {
            version: VERSION,
            base,
            silver_epoch,
            build_id: format!(
                "{}-{}-{}",
                now.timestamp_nanos_opt().unwrap_or_default(),
                std::process::id(),
                rand::random::<u32>()
            ),
            ..Default::default()
        }
    }

    /// The state of `date`, if a run left one (an unreadable one only costs a rebuild).
    pub fn load(lake: &Lake, source: &str, date: NaiveDate) -> Option<Self> {
        let text = lake
            .day_record(Layer::Gold, tables::BUILD_STATE, source, date)
            .ok()
            .flatten()?;
        serde_json::from_str::<Self>(&text)
            .ok()
            .filter(|s| s.version == VERSION)
    }

    /// Commit the state of `date` (after the tables it describes).
    pub fn save(&self, lake: &Lake, source: &str, date: NaiveDate) -> Result<()> {
        let text = serde_json::to_string(self)?;
        lake.commit_day_record(Layer::Gold, tables::BUILD_STATE, source, date, &text)
    }

    /// Drop the state of `date` and its tables (a day built whole carries nothing over).
    pub fn drop_all(lake: &Lake, source: &str, date: NaiveDate) -> Result<()> {
        for table in [
            tables::BUILD_STATE,
            tables::WINDOW_PARTIALS,
            tables::SESSION_EVENTS,
            super::session_merge::SESSION_KEYS,
        ] {
            lake.drop_partition(Layer::Gold, table, source, date)?;
        }
        Ok(())
    }
}

/// What a day's features are built with besides its silver rows: gold's settings, the
/// session key, the parse settings, the template successors silver has named and the earlier
/// days (top templates, new templates and baselines come from them). A state built with other
/// ones is not carried on.
pub fn base_of(ctx: &Context, date: NaiveDate) -> Result<String> {
    let lake = &ctx.lake;
    let earlier: Vec<String> = super::history::earlier_days(ctx, date)?
        .iter()
        .map(NaiveDate::to_string)
        .collect();
    // The lateness and the idle time only decide which windows and sessions are closed,
    // which every run works out again.
    let mut gold = ctx.resolved.gold.clone();
    gold.allowed_lateness_minutes = 0;
    gold.session_idle_minutes = 0;
    let text = format!(
        "{gold:?}|{:?}|{:?}|successors={}|earlier={}",
        ctx.resolved.parse.session_key,
        serde_json::to_string(&ctx.resolved.parse.settings).unwrap_or_default(),
        lake.partition_fingerprint(
            Layer::Silver,
            crate::stages::template_store::SUCCESSORS,
            &ctx.source,
            date
        )?,
        earlier.join(",")
    );
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    Ok(digest.iter().take(16).map(|b| format!("{b:02x}")).collect())
}

/// The file and line number of silver row `row` of `date`.
pub fn silver_row(ctx: &Context, date: NaiveDate, row: u64) -> Result<Option<(String, u64)>> {
    let Some(silver) = ctx
        .lake
        .scan_partition(Layer::Silver, tables::EVENTS, &ctx.source, date)?
    else {
        return Ok(None);
    };
    let one = silver
        .slice(row as i64, 1)
        .select([col("file"), col("line_no").cast(DataType::UInt64)])
        .collect()
        .map_err(anyhow::Error::from)
        .context("reading the last silver row 03-gold read")?;
    if one.height() == 0 {
        return Ok(None);
    }
    let file = one.column("file")?.str()?.get(0).unwrap_or_default();
    let line = one.column("line_no")?.u64()?.get(0).unwrap_or_default();
    Ok(Some((file.to_string(), line)))
}
