//! Parsing a batch too large to hold in memory: one pass over its lines, a window at a time,
//! then templates for all of them.
//!
//! Templates are mined from a batch's *distinct* masked messages, in the order they first
//! appear, so they do not need the lines themselves. [`Miner::stage_window`] parses a window
//! (headers, masking, values) and keeps the distinct masked messages and their counts; each
//! event of the window carries the index of its masked message, which [`Mined::template_of`]
//! turns into its template once [`Miner::finish`] has mined the whole batch. Windows fall on
//! [`CHUNK`] boundaries, so every line parses exactly as it would in one
//! [`Parser::parse_batch`] over the whole batch — which is itself one window.

use rustc_hash::FxHashMap;

use super::drain::Drain;
use super::{
    Batch, Continuation, Event, Parser, StagedChunk, Templates, assemble, join_continuations,
    refine, template_id,
};

/// The batch's distinct masked messages in first-seen order, with counts.
#[derive(Default)]
pub struct Miner {
    global: FxHashMap<String, usize>,
    order: Vec<String>,
    weights: Vec<u64>,
}

impl Miner {
    /// Parse one window of the batch (windows in order, each a whole number of [`CHUNK`]s but
    /// the last) and keep its distinct messages. Its events' `template` is their masked
    /// message's index until [`Miner::finish`]; continuation lines before its first event are
    /// left to the caller as orphans. `before`: the last line of the previous window.
    pub fn stage_window<'a>(
        &mut self,
        parser: &Parser,
        lines: &[Result<&'a str, String>],
        before: Option<&str>,
    ) -> Window<'a> {
        self.stage_window_by(&[(parser, 0..lines.len())], lines, before)
    }

    /// [`Miner::stage_window`] with a parser for each run of lines (`runs`: in order, covering
    /// `lines`): a window of lines from several files, each read in its own format. A run
    /// after the first starts a file: no line before it can make its first a continuation.
    pub fn stage_window_by<'a>(
        &mut self,
        runs: &[(&Parser, std::ops::Range<usize>)],
        lines: &[Result<&'a str, String>],
        before: Option<&str>,
    ) -> Window<'a> {
        let mut chunks = Vec::new();
        for (k, (parser, range)) in runs.iter().enumerate() {
            let before = if k == 0 { before } else { None };
            chunks.extend(parser.stage(&lines[range.clone()], before));
        }
        let global_of_local: Vec<Vec<usize>> =
            chunks.iter_mut().map(|c| self.add_chunk(c)).collect();
        let (mut parsed, params, continuations) = assemble(chunks, &global_of_local);
        // Orphans come before the window's first event: the first continuations.
        let orphan_lines = join_continuations(&mut parsed, &continuations);
        let orphans: Vec<Continuation<'a>> =
            continuations.into_iter().take(orphan_lines.len()).collect();
        debug_assert!(orphans.iter().map(|c| c.line).eq(orphan_lines));
        Window {
            batch: Batch {
                parsed,
                templates: Templates::new(),
                params,
            },
            orphans,
        }
    }

    /// Count one staged chunk's messages (taking its distinct messages, which assembling the
    /// chunk does not need); returns the global index of each of them.
    fn add_chunk(&mut self, chunk: &mut StagedChunk<'_>) -> Vec<usize> {
        std::mem::take(&mut chunk.distinct)
            .into_iter()
            .zip(&chunk.counts)
            .map(|(masked, &count)| {
                let g = match self.global.get(masked.as_str()) {
                    Some(&g) => g,
                    None => {
                        self.global.insert(masked.clone(), self.order.len());
                        self.order.push(masked);
                        self.weights.push(0);
                        self.order.len() - 1
                    }
                };
                self.weights[g] += u64::from(count);
                g
            })
            .collect()
    }

    /// A miner that goes on from the distinct messages (first-seen order) and their counts
    /// an earlier run of the same batch kept: 02-silver parses a day's new lines on top of
    /// the lines it parsed before, and the templates it mines are those of the whole day.
    pub fn resume(order: Vec<String>, weights: Vec<u64>) -> Self {
        let global = order
            .iter()
            .enumerate()
            .map(|(i, m)| (m.clone(), i))
            .collect();
        Self {
            global,
            order,
            weights,
        }
    }

    /// The distinct masked messages so far, indexed as the staged events' `template` is.
    pub fn messages(&self) -> &[String] {
        &self.order
    }

    /// Each distinct message's count of events so far (index as [`Miner::messages`]).
    pub fn weights(&self) -> &[u64] {
        &self.weights
    }

    /// Mine the templates: Drain over the distinct messages, then the refine pass. The miner
    /// is left as it was, so later windows can still be added and mined again.
    pub fn finish(&self, parser: &Parser) -> Mined {
        let mut drain = Drain::new(parser.drain.clone());
        let drain_cluster_of: Vec<usize> = self.order.iter().map(|m| drain.add(m)).collect();
        let order: Vec<&str> = self.order.iter().map(String::as_str).collect();
        let (cluster_of, texts) = refine::refine(
            &order,
            &self.weights,
            &drain_cluster_of,
            parser.max_constant_values,
        );
        let templates: Templates = texts
            .into_iter()
            .map(|text| (template_id(&text), text))
            .collect();
        Mined {
            cluster_of,
            templates,
        }
    }
}

/// A batch's templates, and which one each distinct masked message belongs to.
pub struct Mined {
    cluster_of: Vec<usize>,
    pub templates: Templates,
}

impl Mined {
    /// The template (index into [`Mined::templates`]) of the masked message with index
    /// `message`, as [`Miner::stage_window`] numbered them.
    pub fn template_of(&self, message: usize) -> usize {
        self.cluster_of[message]
    }
}

/// One window of a batch, parsed.
pub struct Window<'a> {
    /// Its lines, each event's `template` its masked message's index (see [`Miner`]);
    /// continuation lines with no event before them in the window are still
    /// [`super::Parsed::Joined`] (see `orphans`).
    pub batch: Batch<'a>,
    /// Continuation lines at the window's start, before its first event, with their text:
    /// they belong to the last event of an earlier window, or, in the first window, to none.
    pub orphans: Vec<Continuation<'a>>,
}

/// An event that outlives its window — the last event of a window, kept until the next one
/// shows whether continuation lines follow it — with its own text and values.
pub struct Detached {
    pub event: Event<'static>,
    /// Its values, a JSON array of strings.
    pub params: String,
}

/// `event` of `batch`, owning its text.
pub fn detach(batch: &Batch<'_>, event: &Event<'_>) -> Detached {
    let h = &event.header;
    let event_owned = Event {
        header: super::Header {
            ts_ms: h.ts_ms,
            level: h.level,
            level_raw: h.level_raw.clone().into_owned().into(),
            service: h.service.clone().into_owned().into(),
            message: h.message.clone().into_owned().into(),
            session: h.session.clone().map(|s| s.into_owned().into()),
            partial: h.partial,
        },
        params: event.params,
        template: event.template,
        lines: event.lines,
    };
    Detached {
        event: event_owned,
        params: batch.params(event).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{CHUNK, ParseSettings, Parsed, ParserConfig};
    use chrono::NaiveDate;

    /// Windows parse every line exactly as one batch does, continuation lines across window
    /// boundaries included (reported as orphans for the caller to join).
    #[test]
    fn windows_parse_like_one_batch() {
        let settings = ParseSettings {
            format: "<Date> <Time> <Level> <Component>: <Content>".into(),
            ..Default::default()
        };
        let parser = Parser::new(
            &ParserConfig::new(settings).unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
        )
        .unwrap();
        let mut lines: Vec<String> = Vec::new();
        for i in 0..(3 * CHUNK + 700) {
            let line = match i % 97 {
                0 => "\tat com.example.Worker.run(Worker.java:42)".to_string(),
                1 => "not a log line".to_string(),
                k if k % 3 == 0 => format!(
                    "2026-11-20 10:{:02}:{:02} ERROR api: request {i} failed after {k} ms",
                    i % 60,
                    k % 60
                ),
                k => format!(
                    "2026-11-20 10:{:02}:{:02} INFO db: stored block blk_{i} size {k}",
                    i % 60,
                    k % 60
                ),
            };
            lines.push(line);
        }
        // A window boundary right before a run of continuation lines.
        lines[2 * CHUNK] = "\tat com.example.Main.main(Main.java:7)".into();
        lines[2 * CHUNK + 1] = "Caused by: java.io.IOException: disk full".into();
        let inputs: Vec<Result<&str, String>> = lines.iter().map(|l| Ok(l.as_str())).collect();
        let whole = parser.parse_batch(&inputs);

        let window = 2 * CHUNK;
        let mut miner = Miner::default();
        let mut tail: Option<Detached> = None;
        let mut got: Vec<(String, usize, u32)> = Vec::new();
        let mut params: Vec<String> = Vec::new();
        for w in inputs.chunks(window) {
            let win = miner.stage_window(&parser, w, None);
            for c in &win.orphans {
                // Before the batch's first event there is nothing to join: quarantined.
                if let Some(t) = tail.as_mut() {
                    crate::parse::join_line(&mut t.event, c);
                }
            }
            for p in &win.batch.parsed {
                if let Parsed::Event(e) = p {
                    if let Some(t) = tail.take() {
                        got.push((
                            t.event.header.message.to_string(),
                            t.event.template,
                            t.event.lines,
                        ));
                        params.push(t.params);
                    }
                    tail = Some(detach(&win.batch, e));
                }
            }
        }
        let t = tail.unwrap();
        got.push((
            t.event.header.message.to_string(),
            t.event.template,
            t.event.lines,
        ));
        params.push(t.params);
        // Mined after the last window: the same templates, each event given its own.
        let mined = miner.finish(&parser);
        assert_eq!(mined.templates, whole.templates);
        for g in got.iter_mut() {
            g.1 = mined.template_of(g.1);
        }
        let expected: Vec<(String, usize, u32)> = whole
            .parsed
            .iter()
            .filter_map(|p| match p {
                Parsed::Event(e) => Some((e.header.message.to_string(), e.template, e.lines)),
                _ => None,
            })
            .collect();
        let expected_params: Vec<String> = whole
            .parsed
            .iter()
            .filter_map(|p| match p {
                Parsed::Event(e) => Some(whole.params(e).to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(got.len(), expected.len());
        assert_eq!(got, expected);
        assert_eq!(params, expected_params);
        assert!(
            expected
                .iter()
                .any(|e| e.0.contains("Caused by: java.io.IOException")),
            "a continuation joined across the window boundary"
        );
    }

    /// A line split in parts across a window boundary joins back as in one batch: the
    /// window after sees the part before it through `before`.
    #[test]
    fn split_lines_join_across_windows() {
        let settings = ParseSettings {
            format: "cri".into(),
            ..Default::default()
        };
        let parser = Parser::new(
            &ParserConfig::new(settings).unwrap(),
            NaiveDate::from_ymd_opt(2025, 6, 24).unwrap(),
        )
        .unwrap();
        let window = 2 * CHUNK;
        let lines: Vec<String> = (0..window + 100)
            .map(|i| {
                let tag = if i == window - 1 || i == window {
                    "P"
                } else {
                    "F"
                };
                format!("2025-06-24T10:00:{:02}Z stdout {tag} part {i}", i % 60)
            })
            .collect();
        let inputs: Vec<Result<&str, String>> = lines.iter().map(|l| Ok(l.as_str())).collect();
        let whole = parser.parse_batch(&inputs);
        let mut miner = Miner::default();
        miner.stage_window(&parser, &inputs[..window], None);
        let second = miner.stage_window(&parser, &inputs[window..], Some(&lines[window - 1]));
        assert_eq!(
            second.orphans.len(),
            2,
            "both later parts continue the first"
        );
        assert!(second.orphans.iter().all(|c| c.glue.is_empty()));
        let Parsed::Event(e) = &whole.parsed[window - 1] else {
            panic!("{:?}", whole.parsed[window - 1])
        };
        assert_eq!(
            e.header.message,
            format!("part {}part {}part {}", window - 1, window, window + 1)
        );
    }
}
