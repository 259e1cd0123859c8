//! Timestamps: the header's date/time fields → UTC epoch milliseconds.
//!
//! The fields that carry time (`Timestamp`, `Date`, `Time`, `Month`, `Day`, `Year`) are joined
//! with spaces in the order the format names them and tried against a list of shapes. The shape
//! that worked last is tried first, so a file costs one attempt per line once it is known.
//! Logs without a year (syslog's `Jun 14 15:16:01`) take the batch date's year.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// Field names that hold parts of the timestamp.
pub const TIME_FIELDS: &[&str] = &["Timestamp", "Year", "Month", "Date", "Day", "Time"];

/// Shapes tried in order (chrono format strings); `%Y ` prefixed ones are for year-less logs.
const SHAPES: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%y%m%d %H%M%S",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S,%3f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%y/%m/%d %H:%M:%S",
    "%a %b %d %H:%M:%S %Y",
    "%Y%m%d-%H:%M:%S:%3f",
    "%Y-%m-%d-%H.%M.%S%.f",
    "%d/%b/%Y:%H:%M:%S",
];

const YEARLESS: &[&str] = &["%Y %b %d %H:%M:%S", "%Y %b %e %H:%M:%S"];

#[derive(Debug, Clone)]
pub struct TimestampParser {
    default_year: i32,
    last_shape: usize,
}

impl TimestampParser {
    pub fn new(batch_date: NaiveDate) -> Self {
        use chrono::Datelike;
        Self {
            default_year: batch_date.year(),
            last_shape: 0,
        }
    }

    /// Epoch milliseconds (UTC), or `None` when no shape fits.
    pub fn parse(&mut self, text: &str) -> Option<i64> {
        // The two most common shapes by far, read without a format interpreter.
        if let Some(ms) = fast_iso(text.as_bytes()).or_else(|| fast_compact(text.as_bytes())) {
            return Some(ms);
        }
        let n_shapes = SHAPES.len() + YEARLESS.len() + 2;
        for k in 0..n_shapes {
            let i = (self.last_shape + k) % n_shapes;
            if let Some(ms) = self.try_shape(i, text) {
                self.last_shape = i;
                return Some(ms);
            }
        }
        None
    }

    fn try_shape(&self, i: usize, text: &str) -> Option<i64> {
        if i < SHAPES.len() {
            return NaiveDateTime::parse_from_str(text, SHAPES[i])
                .ok()
                .map(|t| t.and_utc().timestamp_millis());
        }
        let i = i - SHAPES.len();
        if i < YEARLESS.len() {
            let with_year = format!("{} {}", self.default_year, text);
            return NaiveDateTime::parse_from_str(&with_year, YEARLESS[i])
                .ok()
                .map(|t| t.and_utc().timestamp_millis());
        }
        match i - YEARLESS.len() {
            // ISO 8601 / RFC 3339 with an offset.
            0 => DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.timestamp_millis()),
            // Epoch seconds or milliseconds.
            _ => {
                if !text.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let v: i64 = text.parse().ok()?;
                match text.len() {
                    10 => Some(v * 1000),
                    13 => Some(v),
                    _ => None,
                }
            }
        }
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u32)
    })
}

fn to_millis(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: u32) -> Option<i64> {
    let t = NaiveDate::from_ymd_opt(y, mo, d)?.and_hms_milli_opt(h, mi, s, ms)?;
    Some(t.and_utc().timestamp_millis())
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.f…][Z]` (UTC; anything else, such as an offset, goes the slow way).
fn fast_iso(b: &[u8]) -> Option<i64> {
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let mut rest = &b[19..];
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
    if !(rest.is_empty() || rest == b"Z") {
        return None;
    }
    to_millis(
        digits(&b[0..4])? as i32,
        digits(&b[5..7])?,
        digits(&b[8..10])?,
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
        ms,
    )
}

/// `yymmdd hhmmss` (HDFS).
fn fast_compact(b: &[u8]) -> Option<i64> {
    if b.len() != 13 || b[6] != b' ' {
        return None;
    }
    to_millis(
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

    #[test]
    fn parses_the_common_shapes() {
        let mut p = TimestampParser::new(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap());
        assert_eq!(p.parse("081109 203615"), Some(ms("2008-11-09T20:36:15Z")));
        assert_eq!(
            p.parse("2026-11-18T14:05:03.123Z"),
            Some(ms("2026-11-18T14:05:03.123Z"))
        );
        assert_eq!(
            p.parse("2015-07-29 17:41:44,747"),
            Some(ms("2015-07-29T17:41:44.747Z"))
        );
        assert_eq!(
            p.parse("Sun Dec 04 04:47:44 2005"),
            Some(ms("2005-12-04T04:47:44Z"))
        );
        assert_eq!(p.parse("Jun 14 15:16:01"), Some(ms("2026-06-14T15:16:01Z")));
        assert_eq!(
            p.parse("2026-11-18T14:05:03+02:00"),
            Some(ms("2026-11-18T12:05:03Z"))
        );
        assert_eq!(p.parse("1700000000"), Some(1_700_000_000_000));
        assert_eq!(p.parse("not a time"), None);
        assert_eq!(
            p.parse("2026-11-18 14:05:03"),
            Some(ms("2026-11-18T14:05:03Z"))
        );
        assert_eq!(
            p.parse("2026-11-18T14:05:03.1Z"),
            Some(ms("2026-11-18T14:05:03.100Z"))
        );
        assert_eq!(p.parse("2026-13-18T14:05:03Z"), None);
    }
}
