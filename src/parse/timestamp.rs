//! Timestamps: the header's date/time fields → UTC epoch milliseconds.
//!
//! The fields that carry time (`Timestamp`, `Year`, `Month`, `Date`, `Day`, `Time`) are joined
//! with spaces in the order the format names them and tried against a list of shapes. The shape
//! that worked last is tried first, so a file costs one attempt per line once it is known, and
//! the most common shapes are read by hand without a format interpreter.
//!
//! Most logs write local time without saying which zone: those are read in the configured zone
//! (`parse.timezone`, an IANA name such as `Europe/Berlin`, default UTC). A timestamp that
//! carries its own offset (`Z`, `+02:00`, `-0700`) keeps it. Logs without a year (syslog's
//! `Jun 14 15:16:01`, Android's `03-17 16:13:38.811`) take `parse.year` when set, otherwise the
//! batch date's year — or the year before when that would put the line more than a day after
//! the batch date (December lines read in January).
//!
//! Some formats name the same instant more than once: loghub's BGL and Thunderbird formats
//! carry an epoch `<Timestamp>`, a `<Date>` and a full `<Time>`, which joined read as no
//! shape at all. When the joined fields do not read, the subsets of them are tried — most
//! fields first, then the longest text, and a reading with a year before one without — and
//! the subset that read is kept for the following lines. The search is bounded, so a file
//! that is not a log of this format costs a few failed searches, not one per line.

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

/// Field names that hold parts of the timestamp.
pub const TIME_FIELDS: &[&str] = &["Timestamp", "Year", "Month", "Date", "Day", "Time"];

/// Shapes with a year and no zone (chrono format strings), tried in order.
const NAIVE_SHAPES: &[&str] = &[
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d-%H.%M.%S%.f", // BGL: 2005-06-03-15.42.50.675872
    "%y/%m/%d %H:%M:%S",    // Spark: 17/06/09 20:10:40
    "%a %b %d %H:%M:%S %Y", // Apache error: Sun Dec 04 04:47:44 2005
    "%a %b %e %H:%M:%S %Y", // ctime with a space-padded day
    "%Y.%m.%d %H:%M:%S",    // Thunderbird: 2005.11.09 12:01:01
    "%Y %b %d %H:%M:%S",    // Mac/syslog with the year field: 2017 Jul 1 09:00:55
    "%d/%b/%Y:%H:%M:%S",    // access log without the offset
    "%Y/%m/%d %H:%M:%S%.f",
    "%d.%m.%Y %H:%M:%S%.f",
    "%m/%d/%Y %H:%M:%S%.f",
    "%m/%d/%Y %I:%M:%S %p",
    "%Y%m%d %H:%M:%S%.f",
    "%Y%m%d%H%M%S",
];

/// Shapes that carry their own offset.
const OFFSET_SHAPES: &[&str] = &[
    "%d/%b/%Y:%H:%M:%S %z", // access log: 10/Oct/2000:13:55:36 -0700
    "%Y-%m-%d %H:%M:%S%.f %z",
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%a %b %d %H:%M:%S %z %Y",
];

/// Shapes without a year; the year is prepended before parsing.
const YEARLESS_SHAPES: &[&str] = &[
    "%Y %b %d %H:%M:%S%.f", // syslog: Jun 14 15:16:01
    "%Y %b %e %H:%M:%S%.f",
    "%Y %m-%d %H:%M:%S%.f", // Android: 03-17 16:13:38.811
    "%Y %m.%d %H:%M:%S",    // Proxifier: 10.30 16:49:06
    "%Y %a %b %d %H:%M:%S",
];

/// One way of reading a timestamp; tried in this order, the last success first.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Naive(usize),
    Offset(usize),
    Yearless(usize),
    Rfc3339,
    Epoch,
    HealthApp,
}

const ALL_SHAPES: usize = NAIVE_SHAPES.len() + OFFSET_SHAPES.len() + YEARLESS_SHAPES.len() + 3;

fn shape(i: usize) -> Shape {
    let mut i = i;
    if i < NAIVE_SHAPES.len() {
        return Shape::Naive(i);
    }
    i -= NAIVE_SHAPES.len();
    if i < OFFSET_SHAPES.len() {
        return Shape::Offset(i);
    }
    i -= OFFSET_SHAPES.len();
    if i < YEARLESS_SHAPES.len() {
        return Shape::Yearless(i);
    }
    match i - YEARLESS_SHAPES.len() {
        0 => Shape::Rfc3339,
        1 => Shape::Epoch,
        _ => Shape::HealthApp,
    }
}

/// How to read times that do not say their zone or year.
#[derive(Debug, Clone, Copy)]
pub struct TimeContext {
    pub zone: Tz,
    /// Year for year-less timestamps; `None`: from the batch date.
    pub year: Option<i32>,
    pub batch_date: NaiveDate,
}

impl TimeContext {
    pub fn utc(batch_date: NaiveDate) -> Self {
        Self {
            zone: Tz::UTC,
            year: None,
            batch_date,
        }
    }
}

/// Parse a configured zone name: an IANA name (`Europe/Berlin`) or `UTC`.
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("unknown time zone {name:?}: use an IANA name such as \"UTC\" or \"Europe/Berlin\"")
    })
}

/// How many times a parser searches the subsets of a line's time fields without finding one
/// that reads, before it stops searching.
const SUBSET_SEARCHES: u32 = 64;

#[derive(Debug, Clone)]
pub struct TimestampParser {
    ctx: TimeContext,
    last_shape: usize,
    /// The subset of the time fields (a bit per field) that read when all of them joined did
    /// not; `None` while the whole join reads.
    parts_mask: Option<u32>,
    searches_left: u32,
    /// The last text read, whether it could be year-less, and what it read as. Consecutive
    /// lines mostly share their timestamp (a busy log writes many lines a second), and
    /// reading the same text again right after gives the same answer: the shape that read it
    /// is where the next search starts.
    last: Option<(String, bool, Option<i64>)>,
    /// The time fields joined, reused from line to line.
    joined: String,
}

impl TimestampParser {
    pub fn new(ctx: TimeContext) -> Self {
        Self {
            ctx,
            last_shape: 0,
            parts_mask: None,
            searches_left: SUBSET_SEARCHES,
            last: None,
            joined: String::new(),
        }
    }

    /// Epoch milliseconds (UTC), or `None` when no shape fits.
    pub fn parse(&mut self, text: &str) -> Option<i64> {
        self.parse_as(text, true)
    }

    /// A timestamp spread over several header fields (in format order): joined with spaces,
    /// or, when that does not read, the subset of them that does (see the module docs).
    pub fn parse_parts(&mut self, parts: &[&str]) -> Option<i64> {
        let n = parts.len().min(31);
        if n == 0 {
            return None;
        }
        let full = (1u32 << n) - 1;
        let join = |mask: u32| -> String {
            let picked: Vec<&str> = (0..n)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| parts[i])
                .collect();
            picked.join(" ")
        };
        if let Some(mask) = self.parts_mask
            && let Some(ms) = self.parse(&join(mask))
        {
            return Some(ms);
        }
        // All the fields joined, the usual case: in a buffer reused from line to line.
        let mut joined = std::mem::take(&mut self.joined);
        joined.clear();
        for (i, part) in parts[..n].iter().enumerate() {
            if i > 0 {
                joined.push(' ');
            }
            joined.push_str(part);
        }
        let read = self.parse(&joined);
        self.joined = joined;
        if read.is_some() {
            return read;
        }
        // A subset found once is the file's; failing that, the line is bad, not the shape.
        if self.parts_mask.is_some() || self.searches_left == 0 {
            return None;
        }
        self.searches_left -= 1;
        let mut subsets: Vec<(u32, String)> = (1..full).map(|m| (m, join(m))).collect();
        subsets.sort_by(|(ma, ta), (mb, tb)| {
            mb.count_ones()
                .cmp(&ma.count_ones())
                .then(tb.len().cmp(&ta.len()))
                .then(ma.cmp(mb))
        });
        for allow_yearless in [false, true] {
            for (mask, text) in &subsets {
                if let Some(ms) = self.parse_as(text, allow_yearless) {
                    self.parts_mask = Some(*mask);
                    return Some(ms);
                }
            }
        }
        None
    }

    /// [`Self::parse`], optionally refusing shapes without a year: a subset of the time fields
    /// that reads only that way (`Nov 9 12:01:01` beside `2005.11.09`) lost the year.
    fn parse_as(&mut self, text: &str, allow_yearless: bool) -> Option<i64> {
        let text = text.trim();
        if let Some((last, yearless, read)) = &self.last
            && last == text
            && *yearless == allow_yearless
        {
            return *read;
        }
        let read = self.read_shapes(text, allow_yearless);
        let (mut last, _, _) = self.last.take().unwrap_or_default();
        last.clear();
        last.push_str(text);
        self.last = Some((last, allow_yearless, read));
        read
    }

    fn read_shapes(&mut self, text: &str, allow_yearless: bool) -> Option<i64> {
        let b = text.as_bytes();
        if let Some((t, utc)) = fast_iso(b) {
            return if utc {
                Some(t.and_utc().timestamp_millis())
            } else {
                self.local(t)
            };
        }
        if let Some(naive) = fast_compact(b) {
            return self.local(naive);
        }
        for k in 0..ALL_SHAPES {
            let i = (self.last_shape + k) % ALL_SHAPES;
            let shape = shape(i);
            if !allow_yearless && matches!(shape, Shape::Yearless(_)) {
                continue;
            }
            if let Some(ms) = self.try_shape(shape, text) {
                self.last_shape = i;
                return Some(ms);
            }
        }
        None
    }

    /// A wall-clock time in the configured zone → UTC millis. An ambiguous local time (the
    /// hour repeated when clocks go back) takes the earlier instant; a skipped one (clocks
    /// going forward) cannot have been written by a correct clock and is read as UTC offset
    /// of the hour before.
    pub(super) fn local(&self, naive: NaiveDateTime) -> Option<i64> {
        if self.ctx.zone == Tz::UTC {
            return Some(naive.and_utc().timestamp_millis());
        }
        match self.ctx.zone.from_local_datetime(&naive) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.timestamp_millis()),
            LocalResult::None => self
                .ctx
                .zone
                .from_local_datetime(&(naive - chrono::Duration::hours(1)))
                .earliest()
                .map(|t| t.timestamp_millis() + 3_600_000),
        }
    }

    fn year_for(&self, month_day: Option<(u32, u32)>) -> i32 {
        if let Some(y) = self.ctx.year {
            return y;
        }
        let batch = self.ctx.batch_date;
        match month_day.and_then(|(m, d)| NaiveDate::from_ymd_opt(batch.year(), m, d)) {
            Some(date) if date > batch + chrono::Duration::days(1) => batch.year() - 1,
            _ => batch.year(),
        }
    }

    fn try_shape(&self, shape: Shape, text: &str) -> Option<i64> {
        match shape {
            Shape::Naive(i) => NaiveDateTime::parse_from_str(text, NAIVE_SHAPES[i])
                .ok()
                .and_then(|t| self.local(t)),
            Shape::Offset(i) => DateTime::parse_from_str(text, OFFSET_SHAPES[i])
                .ok()
                .map(|t| t.timestamp_millis()),
            Shape::Yearless(i) => {
                let year = self.ctx.year.unwrap_or(self.ctx.batch_date.year());
                let with_year = format!("{year} {text}");
                let t = NaiveDateTime::parse_from_str(&with_year, YEARLESS_SHAPES[i]).ok()?;
                let year = self.year_for(Some((t.month(), t.day())));
                let t = if year == t.year() {
                    t
                } else {
                    t.with_year(year)?
                };
                self.local(t)
            }
            Shape::Rfc3339 => DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.timestamp_millis()),
            Shape::Epoch => epoch(text),
            Shape::HealthApp => health_app(text).and_then(|t| self.local(t)),
        }
    }
}

/// Epoch seconds (10 digits, optional fraction), milliseconds (13 digits), microseconds (16:
/// journald's `__REALTIME_TIMESTAMP`) or nanoseconds (19: Go's and OpenTelemetry's `UnixNano`).
fn epoch(text: &str) -> Option<i64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let v: i64 = whole.parse().ok()?;
    match whole.len() {
        9 | 10 => {
            let ms = frac
                .bytes()
                .take(3)
                .fold((0i64, 100i64), |(acc, scale), b| {
                    (acc + (b - b'0') as i64 * scale, scale / 10)
                });
            Some(v * 1000 + ms.0)
        }
        13 if frac.is_empty() => Some(v),
        16 if frac.is_empty() => Some(v / 1_000),
        19 if frac.is_empty() => Some(v / 1_000_000),
        _ => None,
    }
}

/// `20171223-22:15:29:606`, with fields that may drop their leading zeros (`22:53:7:6`).
fn health_app(text: &str) -> Option<NaiveDateTime> {
    let (date, time) = text.split_once('-')?;
    if date.len() != 8 {
        return None;
    }
    let d = date.as_bytes();
    let mut parts = time.split(':');
    let mut next = || -> Option<u32> {
        let p = parts.next()?;
        (!p.is_empty() && p.len() <= 3).then_some(())?;
        digits(p.as_bytes())
    };
    let (h, mi, s, ms) = (next()?, next()?, next()?, next()?);
    NaiveDate::from_ymd_opt(
        digits(&d[0..4])? as i32,
        digits(&d[4..6])?,
        digits(&d[6..8])?,
    )?
    .and_hms_milli_opt(h, mi, s, ms)
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() {
        return None;
    }
    b.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u32)
    })
}

fn naive(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: u32) -> Option<NaiveDateTime> {
    NaiveDate::from_ymd_opt(y, mo, d)?.and_hms_milli_opt(h, mi, s, ms)
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.,f…][Z]`, and whether it said `Z` (UTC by its own word; without
/// it the configured zone applies). An offset goes the general way.
fn fast_iso(b: &[u8]) -> Option<(NaiveDateTime, bool)> {
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let utc = *b.last()? == b'Z';
    let mut rest = &b[19..b.len() - utc as usize];
    let mut ms = 0;
    if let Some((b'.' | b',', frac)) = rest.split_first() {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let mut v = digits(&frac[..n.min(3)])?;
        for _ in n.min(3)..3 {
            v *= 10;
        }
        ms = v;
        rest = &frac[n..];
    }
    if !rest.is_empty() {
        return None;
    }
    let t = naive(
        digits(&b[0..4])? as i32,
        digits(&b[5..7])?,
        digits(&b[8..10])?,
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
        ms,
    )?;
    Some((t, utc))
}

/// `yymmdd hhmmss` (HDFS).
fn fast_compact(b: &[u8]) -> Option<NaiveDateTime> {
    if b.len() != 13 || b[6] != b' ' {
        return None;
    }
    naive(
        2000 + digits(&b[0..2])? as i32,
        digits(&b[2..4])?,
        digits(&b[4..6])?,
        digits(&b[7..9])?,
        digits(&b[9..11])?,
        digits(&b[11..13])?,
        0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    fn utc_parser() -> TimestampParser {
        TimestampParser::new(TimeContext::utc(
            NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
        ))
    }

    #[test]
    fn parses_the_shapes_of_the_presets() {
        let mut p = utc_parser();
        let cases = [
            ("081109 203615", "2008-11-09T20:36:15Z"),
            ("2026-11-18T14:05:03.123Z", "2026-11-18T14:05:03.123Z"),
            ("2015-07-29 17:41:44,747", "2015-07-29T17:41:44.747Z"),
            ("Sun Dec 04 04:47:44 2005", "2005-12-04T04:47:44Z"),
            ("Jun 14 15:16:01", "2026-06-14T15:16:01Z"),
            ("Jul  1 09:00:55", "2026-07-01T09:00:55Z"),
            ("2026-11-18T14:05:03+02:00", "2026-11-18T12:05:03Z"),
            ("2005-06-03-15.42.50.675872", "2005-06-03T15:42:50.675Z"),
            ("20171223-22:15:29:606", "2017-12-23T22:15:29.606Z"),
            ("20171223-22:53:7:6", "2017-12-23T22:53:07.006Z"),
            ("17/06/09 20:10:40", "2017-06-09T20:10:40Z"),
            ("10/Oct/2000:13:55:36 -0700", "2000-10-10T20:55:36Z"),
            ("03-17 16:13:38.811", "2026-03-17T16:13:38.811Z"),
            ("10.30 16:49:06", "2026-10-30T16:49:06Z"),
            ("2005.11.09 12:01:01", "2005-11-09T12:01:01Z"),
            ("2016-09-28 04:30:30", "2016-09-28T04:30:30Z"),
            ("2026-11-18T14:05:03.1Z", "2026-11-18T14:05:03.100Z"),
        ];
        for (text, expected) in cases {
            assert_eq!(p.parse(text), Some(ms(expected)), "{text}");
        }
        assert_eq!(p.parse("1700000000"), Some(1_700_000_000_000));
        assert_eq!(p.parse("1700000000123"), Some(1_700_000_000_123));
        assert_eq!(p.parse("1131566461.5"), Some(1_131_566_461_500));
        assert_eq!(p.parse("1700000000123456"), Some(1_700_000_000_123));
        assert_eq!(p.parse("1700000000123456789"), Some(1_700_000_000_123));
        assert_eq!(p.parse("17000000001234567"), None);
        assert_eq!(p.parse("not a time"), None);
        assert_eq!(p.parse("2026-13-18T14:05:03Z"), None);
    }

    #[test]
    fn time_fields_that_do_not_read_joined_read_as_their_best_subset() {
        let mut p = utc_parser();
        assert_eq!(
            p.parse_parts(&["081109", "203615"]),
            Some(ms("2008-11-09T20:36:15Z"))
        );
        // Epoch + date + time: the longest field that reads alone is the full time.
        assert_eq!(
            p.parse_parts(&["1117838570", "2005.06.03", "2005-06-03-15.42.50.675872"]),
            Some(ms("2005-06-03T15:42:50.675Z"))
        );
        // A reading with a year beats one without, though it uses fewer fields.
        let mut p = utc_parser();
        assert_eq!(
            p.parse_parts(&["1131566461", "2005.11.09", "Nov", "9", "12:01:01"]),
            Some(ms("2005-11-09T12:01:01Z"))
        );
        assert_eq!(
            p.parse_parts(&["1131566462", "2005.11.09", "Nov", "9", "12:01:02"]),
            Some(ms("2005-11-09T12:01:02Z"))
        );
        // Nothing reads: no time, and the search gives up after a bounded number of lines.
        let mut p = utc_parser();
        for _ in 0..2 * SUBSET_SEARCHES {
            assert_eq!(p.parse_parts(&["not", "a", "time"]), None);
        }
        assert_eq!(p.searches_left, 0);
    }

    #[test]
    fn a_timestamp_read_again_reads_the_same() {
        // The parser remembers its last reading; repeats, interleaved texts, texts that do not
        // read and year-less ones read as a fresh parser reads them.
        let texts = [
            "081109 203615",
            "081109 203615",
            "2026-01-02 10:00:00",
            "not a time",
            "not a time",
            "Dec 31 23:00:00",
            "Dec 31 23:00:00",
            "081109 203615",
            "081109 203616",
        ];
        let mut p = utc_parser();
        for text in texts {
            assert_eq!(p.parse(text), utc_parser().parse(text), "{text}");
        }
        let mut p = utc_parser();
        for text in texts {
            let parts: Vec<&str> = text.split(' ').collect();
            assert_eq!(
                p.parse_parts(&parts),
                utc_parser().parse_parts(&parts),
                "{text}"
            );
        }
        assert_eq!(
            p.parse_parts(&["081109", "203616"]),
            Some(ms("2008-11-09T20:36:16Z"))
        );
    }

    #[test]
    fn zone_and_year_apply_where_the_log_is_silent() {
        let mut p = TimestampParser::new(TimeContext {
            zone: parse_zone("Europe/Berlin").unwrap(),
            year: None,
            batch_date: NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
        });
        // Winter: UTC+1. The log's own offset wins over the zone.
        assert_eq!(
            p.parse("2026-01-02 10:00:00"),
            Some(ms("2026-01-02T09:00:00Z"))
        );
        assert_eq!(
            p.parse("2026-01-02T10:00:00Z"),
            Some(ms("2026-01-02T10:00:00Z"))
        );
        assert_eq!(p.parse("081109 203615"), Some(ms("2008-11-09T19:36:15Z")));
        // December lines read on 2 January belong to the year before.
        assert_eq!(p.parse("Dec 31 23:00:00"), Some(ms("2025-12-31T22:00:00Z")));
        assert_eq!(p.parse("Jan  2 10:00:00"), Some(ms("2026-01-02T09:00:00Z")));

        let mut fixed = TimestampParser::new(TimeContext {
            zone: Tz::UTC,
            year: Some(2005),
            batch_date: NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
        });
        assert_eq!(
            fixed.parse("Jun 14 15:16:01"),
            Some(ms("2005-06-14T15:16:01Z"))
        );
        assert!(parse_zone("Mars/Olympus").is_err());
    }
}
