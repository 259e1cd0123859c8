//! `format = "auto"`: which preset (or generic layout) reads a batch, chosen on its first
//! lines; and, for any format, whether its time field reads at all.

use anyhow::Result;
use chrono::NaiveDate;

use super::timestamp::{self, TimeContext, TimestampParser};
use super::{Format, HeaderReader, Parser, ParserConfig, format, generic, known_level};

/// Which preset `format = "auto"` chose, and how well it fit the sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// A preset's name, or `generic` for the layout read off the sample.
    pub preset: String,
    /// The format in use: the preset's name, or the generic layout's format string.
    pub format: String,
    pub matched: usize,
    pub sampled: usize,
}

/// Lines from the start of a batch that auto-detection tries every preset on.
pub const DETECTION_SAMPLE: usize = 2000;

impl Parser {
    /// A parser for the configured format, or — with `format = "auto"` — for the preset that
    /// reads the most of `sample` (ties go to the preset whose level field holds real levels,
    /// then to the one with more fields, then to the earlier preset in the list). Returns what was detected, if anything.
    pub fn for_sample(
        config: &ParserConfig,
        batch_date: NaiveDate,
        sample: &[&str],
    ) -> Result<(Self, Option<Detection>)> {
        if !config.format.is_auto() {
            let mut parser = Self::new(config, batch_date)?;
            parser.check_time_on(sample);
            return Ok((parser, None));
        }
        // Lines no format could read (empty, NUL bytes) are quarantined for that reason by
        // whichever parser reads them: a sample of nothing else has no format to detect.
        if sample
            .iter()
            .all(|line| line.trim().is_empty() || line.contains('\0'))
        {
            let first = Format::Preset(format::PRESETS[0].0.to_string());
            return Ok((Self::new(&config.with_format(first), batch_date)?, None));
        }
        let candidates = format::PRESETS
            .iter()
            .map(|(name, _)| *name)
            .chain(format::STRUCTURED_PRESETS.iter().copied());
        let mut best: Option<((usize, usize, usize), &str)> = None;
        for name in candidates {
            let candidate = config.with_format(Format::Preset(name.to_string()));
            let parser = Self::new(&candidate, batch_date)?;
            let mut ts = TimestampParser::new(parser.time);
            let (mut matched, mut with_level) = (0, 0);
            for line in sample {
                if let Ok(h) = parser.parse_header(line, &mut ts) {
                    matched += 1;
                    with_level += known_level(&h.level_raw).is_some() as usize;
                }
            }
            // More fields read is the last tie-breaker: the more specific format wins.
            let fields = match &parser.reader {
                HeaderReader::Format(format, _) => format.fields.len(),
                HeaderReader::Structured(..) => 4,
            };
            let score = (matched, with_level, fields);
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, name));
            }
        }
        let ((mut matched, _, _), name) = best.expect("there are presets");
        let mut chosen = config.with_format(Format::Preset(name.to_string()));
        let mut preset = name.to_string();
        // The generic layout when it reads more than twice what the best preset reads: a
        // preset that fits is more specific (it names more fields, knows where sessions and
        // levels are), so it keeps the log unless it plainly does not fit.
        let time = TimeContext {
            zone: timestamp::parse_zone(&config.settings.timezone).map_err(anyhow::Error::msg)?,
            year: config.settings.year,
            batch_date,
        };
        if let Some(format) = generic::infer_format(sample, time) {
            let candidate = config.with_format(Format::Pattern(format));
            let parser = Self::new(&candidate, batch_date)?;
            let mut ts = TimestampParser::new(parser.time);
            let read = sample
                .iter()
                .filter(|line| parser.parse_header(line, &mut ts).is_ok())
                .count();
            if read > 2 * matched {
                (matched, chosen, preset) = (read, candidate, "generic".to_string());
            }
        }
        if matched == 0 {
            anyhow::bail!(
                "format \"auto\": no preset reads any of the first {} lines, and they do not start with a timestamp; set parse.format (or --format) to a format string such as \"<Date> <Time> <Level> <Component>: <Content>\"",
                sample.len()
            );
        }
        let mut parser = Self::new(&chosen, batch_date)?;
        parser.headerless_lines_continue = preset == "generic";
        parser.check_time_on(sample);
        let detection = Detection {
            preset,
            format: chosen.format.spec().to_string(),
            matched,
            sampled: sample.len(),
        };
        Ok((parser, Some(detection)))
    }

    /// The start of the batch date in the parser's time zone, in ms since the epoch: where
    /// events whose time does not read are kept.
    pub(super) fn start_of_batch_date(&self) -> i64 {
        let at = self
            .time
            .batch_date
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists");
        TimestampParser::new(self.time)
            .local(at)
            .unwrap_or_else(|| at.and_utc().timestamp_millis())
    }

    /// Whether the format's time reads on `sample`: when lines match the format but not one
    /// of their times reads, the time is in a shape the parser does not know; say so, and
    /// keep those lines as events at the start of the batch date (see `unreadable_time_at`).
    /// A time that fails on some lines only is a bad line's time, and quarantines that line.
    fn check_time_on(&mut self, sample: &[&str]) {
        let HeaderReader::Format(format, slots) = &self.reader else {
            return;
        };
        let mut ts = TimestampParser::new(self.time);
        let (mut matched, mut timed) = (0usize, 0usize);
        let mut example = None;
        for line in sample {
            let Some(fields) = format.split(line) else {
                continue;
            };
            matched += 1;
            match Self::read_time(slots, &fields, &mut ts) {
                Ok(_) => timed += 1,
                Err(why) => {
                    example.get_or_insert(why);
                }
            }
        }
        if matched > 0 && timed == 0 {
            self.unreadable_time_at = Some(self.start_of_batch_date());
            let example = example.unwrap_or_default();
            tracing::warn!(
                format = %format.source,
                example,
                "none of the {matched} lines that match the format has a time loglake can read (e.g. {example}): they are kept as events at the start of the batch date; name the time field's shape in an issue, or reformat the time"
            );
        }
    }
}
