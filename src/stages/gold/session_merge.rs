//! A session's row brought up to date from its old row and its new events alone.
//!
//! 03-gold aggregated every session a run's events touched again from all its events, found
//! among the day's keyed events: a scan of the whole day at every run, which grew with the
//! day (the larger part of a late run's session step). A session's features are sums, a
//! first and a last time and the template sequence in time order, so when every new event is
//! timed no earlier than the session's last one, the new row is the old row followed by the
//! new events' aggregate — exactly what aggregating all its events gives. A session that
//! does not qualify (an event older than its last, or one without a time, which sorts
//! first) is aggregated from all its events as before.
//!
//! Which sessions had events before a run: those in the day's open part are read anyway; a
//! closed session taken up again is in a closed part, which is opened only when the day's
//! set of session keys ([`KeySet`], 8 bytes a session) has the key.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::NaiveDate;
use polars::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use super::sessions::{self, SessionColumns};
use crate::lake::{Lake, Layer, concat_rows, read_parquet};

/// The table of an open day's session key set.
pub const SESSION_KEYS: &str = "session_keys";

/// The keys of every session an open day has (their hashes), and the run that last wrote
/// them. The set is committed before the session parts: when it names the run about to be
/// done, an earlier attempt of that run may have written the session parts already, and
/// merging would count its events twice, so every touched session is aggregated from all
/// its events instead. (Today such a run finds more event features than its state counts
/// and builds the day again anyway; the set does not rely on that.)
pub struct KeySet {
    hashes: FxHashSet<u64>,
    pub run: u32,
    /// Part files the set is in: a run adds a part with its new keys, and the parts are
    /// joined into one once there are [`KEY_PARTS`] (rewriting the whole set at every run
    /// cost as much as the scan it replaces, late in a day).
    parts: usize,
}

/// Parts of the key set before they are joined into one.
const KEY_PARTS: usize = 16;

impl KeySet {
    pub fn load(lake: &Lake, source: &str, date: NaiveDate) -> Result<Self> {
        let parts = lake.part_files(Layer::Gold, SESSION_KEYS, source, date)?;
        let mut out = Self {
            hashes: FxHashSet::default(),
            run: 0,
            parts: parts.len(),
        };
        for part in parts {
            let df = read_parquet(&part)?;
            out.hashes
                .extend(df.column("key_hash")?.u64()?.iter().flatten());
            if let Some(run) = df.column("run")?.u32()?.get(0) {
                out.run = out.run.max(run);
            }
        }
        Ok(out)
    }

    pub fn has(&self, key: &str) -> bool {
        self.hashes.contains(&key_hash(key))
    }

    /// Add `keys` and commit the set as written by `run`: a part with the keys it did not
    /// have, or the whole set as one part once it has [`KEY_PARTS`] parts.
    pub fn save<'k>(
        self,
        lake: &Lake,
        (source, date): (&str, NaiveDate),
        run: u32,
        keys: impl Iterator<Item = &'k str>,
    ) -> Result<()> {
        let mut new: Vec<u64> = keys
            .map(key_hash)
            .filter(|h| !self.hashes.contains(h))
            .collect();
        new.sort_unstable();
        new.dedup();
        let frame = |hashes: Vec<u64>| -> Result<DataFrame> {
            let mut hashes: Vec<Option<u64>> = hashes.into_iter().map(Some).collect();
            // A last row without a key holds the run, so that a part without keys keeps it.
            hashes.push(None);
            let runs = vec![run; hashes.len()];
            Ok(DataFrame::new_infer_height(vec![
                Column::new("key_hash".into(), hashes),
                Column::new("run".into(), runs),
            ])?)
        };
        if self.parts + 1 < KEY_PARTS {
            let mut df = frame(new)?;
            lake.commit_part_file(
                Layer::Gold,
                SESSION_KEYS,
                source,
                date,
                &format!("part-r{run:06}.parquet"),
                |path| crate::lake::write_parquet(&mut df, path),
            )?;
            return Ok(());
        }
        let mut all: Vec<u64> = self.hashes.into_iter().chain(new).collect();
        all.sort_unstable();
        lake.commit_partition(Layer::Gold, SESSION_KEYS, source, date, &frame(all)?)?;
        Ok(())
    }
}

/// A key's hash as the set keeps it: the first 8 bytes of its SHA-256 (stable across
/// versions and machines, unlike a hasher's).
fn key_hash(key: &str) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// What merging gave: the sessions' rows and template counts (sorted as
/// `sessions::aggregate` sorts them), and the keys to aggregate from all their events.
pub struct Merged {
    pub sessions: DataFrame,
    pub counts: DataFrame,
    pub again: Vec<String>,
}

/// The touched sessions' rows: each new aggregate (`new`, `new_counts`: this run's events
/// alone) after its session's old row (`old`, `old_counts`; none for a new session) when
/// that is exact; `untimed`: sessions with a new event without a time.
pub fn merge(
    (old, old_counts): (&DataFrame, &DataFrame),
    (new, new_counts): (&DataFrame, &DataFrame),
    untimed: &FxHashSet<String>,
) -> Result<Merged> {
    let ts_type = new.column(sessions::START)?.dtype().clone();
    let old_rows = Rows::of(old)?;
    let new_rows = Rows::of(new)?;
    let old_at: FxHashMap<&str, usize> = old_rows
        .key
        .iter()
        .enumerate()
        .map(|(i, k)| (*k, i))
        .collect();
    let mut counts: BTreeMap<(String, Option<String>), i64> = BTreeMap::new();
    let mut add_counts = |df: &DataFrame, keep: &dyn Fn(&str) -> bool| -> Result<()> {
        let keys = df.column("session_key")?.str()?;
        let templates = df.column("template_id")?.str()?;
        let n = df.column("count")?.i64()?;
        for ((k, t), c) in keys.iter().zip(templates.iter()).zip(n.iter()) {
            let k = k.unwrap_or_default();
            if keep(k) {
                *counts
                    .entry((k.to_string(), t.map(str::to_string)))
                    .or_default() += c.unwrap_or(0);
            }
        }
        Ok(())
    };
    // The merged sessions; a new session's row is its new aggregate as it is.
    let mut out = SessionColumns::default();
    let mut again = Vec::new();
    let mut merged_keys: FxHashSet<&str> = FxHashSet::default();
    for (i, key) in new_rows.key.iter().enumerate() {
        let Some(&o) = old_at.get(key) else {
            continue;
        };
        let in_order = match (old_rows.end[o], new_rows.start[i]) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(last), Some(first)) => first >= last,
        };
        if !in_order || untimed.contains(*key) {
            again.push(key.to_string());
            continue;
        }
        merged_keys.insert(key);
        out.key.push(key);
        out.service.push(old_rows.service[o]);
        let start = old_rows.start[o].or(new_rows.start[i]);
        let end = new_rows.end[i].or(old_rows.end[o]);
        out.start.push(start);
        out.end.push(end);
        out.n_events
            .push(old_rows.n_events[o] + new_rows.n_events[i]);
        out.n_distinct.push(0); // counted from the merged template counts below
        out.n_warn.push(old_rows.n_warn[o] + new_rows.n_warn[i]);
        out.n_error.push(old_rows.n_error[o] + new_rows.n_error[i]);
        let (a, b) = (old_rows.sequence[o], new_rows.sequence[i]);
        out.sequence.push(match (a.is_empty(), b.is_empty()) {
            (true, _) => b.to_string(),
            (false, true) => a.to_string(),
            (false, false) => format!("{a} {b}"),
        });
        out.duration.push(start.zip(end).map(|(s, e)| e - s));
    }
    let again_set: FxHashSet<&str> = again.iter().map(String::as_str).collect();
    add_counts(old_counts, &|k| merged_keys.contains(k))?;
    add_counts(new_counts, &|k| !again_set.contains(k))?;
    let mut distinct: FxHashMap<&str, i64> = FxHashMap::default();
    for (k, _) in counts.keys() {
        *distinct.entry(k.as_str()).or_default() += 1;
    }
    for (n, key) in out.n_distinct.iter_mut().zip(&out.key) {
        *n = distinct.get(key).copied().unwrap_or(0);
    }
    let is_new: BooleanChunked = new_rows
        .key
        .iter()
        .map(|k| !old_at.contains_key(k))
        .collect();
    let sessions = concat_rows(vec![out.finish(&ts_type)?, new.filter(&is_new)?])?
        .sort(["session_key"], SortMultipleOptions::default())?;
    let (keys, rest): (Vec<_>, Vec<_>) = counts.into_iter().unzip();
    let (count_keys, templates): (Vec<String>, Vec<Option<String>>) = keys.into_iter().unzip();
    let counts = DataFrame::new_infer_height(vec![
        Column::new("session_key".into(), count_keys),
        Column::new("template_id".into(), templates),
        Column::new("count".into(), rest),
    ])?;
    Ok(Merged {
        sessions,
        counts,
        again,
    })
}

/// A session frame's columns, read once.
struct Rows<'a> {
    key: Vec<&'a str>,
    service: Vec<Option<&'a str>>,
    start: Vec<Option<i64>>,
    end: Vec<Option<i64>>,
    n_events: Vec<i64>,
    n_warn: Vec<i64>,
    n_error: Vec<i64>,
    sequence: Vec<&'a str>,
}

impl<'a> Rows<'a> {
    fn of(df: &'a DataFrame) -> Result<Self> {
        let ints = |name: &str| -> Result<Vec<i64>> {
            Ok(df
                .column(name)?
                .i64()?
                .iter()
                .map(|v| v.unwrap_or(0))
                .collect())
        };
        let times = |name: &str| -> Result<Vec<Option<i64>>> {
            Ok(df
                .column(name)?
                .cast(&DataType::Int64)?
                .i64()?
                .iter()
                .collect())
        };
        Ok(Self {
            key: df
                .column("session_key")?
                .str()?
                .iter()
                .map(Option::unwrap_or_default)
                .collect(),
            service: df.column("service")?.str()?.iter().collect(),
            start: times(sessions::START)?,
            end: times(sessions::END)?,
            n_events: ints("n_events")?,
            n_warn: ints("n_warn")?,
            n_error: ints("n_error")?,
            sequence: df
                .column("template_sequence")?
                .str()?
                .iter()
                .map(Option::unwrap_or_default)
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::gold::sessions::aggregate;

    fn events(rows: &[(&str, Option<i64>, &str, &str)]) -> DataFrame {
        let ts = Column::new("ts".into(), rows.iter().map(|r| r.1).collect::<Vec<_>>())
            .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
            .unwrap();
        DataFrame::new_infer_height(vec![
            Column::new(
                "session_key".into(),
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            ),
            Column::new(
                "service".into(),
                rows.iter().map(|_| "api").collect::<Vec<_>>(),
            ),
            ts,
            Column::new("level".into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()),
            Column::new(
                "template_id".into(),
                rows.iter().map(|r| r.3).collect::<Vec<_>>(),
            ),
        ])
        .unwrap()
    }

    /// Merged rows equal the aggregate of all the events; a session with a new event older
    /// than its last, or without a time, is left to aggregate again; a new session is its
    /// new events' aggregate.
    #[test]
    fn a_merged_session_is_the_aggregate_of_all_its_events() {
        let before = [
            ("a", Some(10), "INFO", "t1"),
            ("a", Some(20), "WARN", "t2"),
            ("b", Some(15), "INFO", "t1"),
            ("c", Some(30), "INFO", "t1"),
            ("d", None, "INFO", "t3"),
        ];
        let after = [
            ("a", Some(20), "ERROR", "t1"),
            ("a", Some(25), "INFO", "t3"),
            ("b", Some(12), "INFO", "t2"),
            ("c", None, "INFO", "t2"),
            ("d", Some(5), "INFO", "t1"),
            ("e", Some(40), "INFO", "t1"),
        ];
        let (old, old_counts) = aggregate(&events(&before)).unwrap();
        let (new, new_counts) = aggregate(&events(&after)).unwrap();
        let untimed: FxHashSet<String> = ["c".to_string()].into_iter().collect();
        let m = merge((&old, &old_counts), (&new, &new_counts), &untimed).unwrap();
        assert_eq!(m.again, vec!["b".to_string(), "c".to_string()]);
        let all: Vec<_> = before.iter().chain(after.iter()).copied().collect();
        let (whole, whole_counts) = aggregate(&events(&all)).unwrap();
        let keep = |df: &DataFrame| {
            df.clone()
                .lazy()
                .filter(col("session_key").is_in(
                    lit(Series::new("k".into(), ["a", "d", "e"])).implode(false),
                    false,
                ))
                .collect()
                .unwrap()
        };
        assert!(
            m.sessions.equals_missing(&keep(&whole)),
            "{:?}\n{:?}",
            m.sessions,
            keep(&whole)
        );
        assert!(
            m.counts.equals_missing(&keep(&whole_counts)),
            "{:?}\n{:?}",
            m.counts,
            keep(&whole_counts)
        );
    }
}
