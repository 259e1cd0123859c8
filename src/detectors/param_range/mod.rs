//! Numeric parameters out of their usual range, on single events.
//!
//! A log line often carries a measurement — `duration_ms=45210`, `gc pause 35 ms`,
//! `heap_used=1007MB`, `queue size 12` — and the line that matters is the one whose value is
//! far outside what that message usually reports: a request taking 45 s where a few hundred
//! milliseconds is normal, a heap forty times its usual size. Silver keeps every masked value
//! of a line; this detector learns, per template and parameter position (and per service when
//! the service has enough lines of its own), the median and a low and a high quantile of the
//! values in training, and flags a line whose value lies beyond a quantile by at least the
//! distance from the median to it — the tail's own width, as the window percentile detector
//! does for counts.
//!
//! Which scale: measurements are positive and skewed (latencies, sizes), and "ten times the
//! usual" means the same at 10 ms and at 10 s, so they are read as `sign(x)·ln(1 + |x|)`; but
//! on that scale a field spread evenly over a range (a port, an amount) grows a long lower
//! tail that is not there. A value is therefore judged on both scales and the smaller
//! excess counts. A tail width is never taken as less than a factor of `min_factor` around
//! the median: a field that barely moved in training (a TTL within seconds of an hour) is
//! out of range only beyond twice or half its value, not at the first wobble.
//!
//! What is not a measurement stays out: a position is judged only when at least
//! `min_numeric_share` of its training values are numbers (an id like `u64919` or a hex
//! transaction id never is) and it took at least `min_distinct` different values (a server id
//! that is one of three numbers, a status code, a constant are codes, whose change is not a
//! matter of magnitude). Identifiers that are all digits and vary (ports, block ids, pids)
//! spread so widely that nothing lies a whole tail width beyond their range. Durations are
//! compared in milliseconds and sizes in bytes whatever unit the line used.
//!
//! Quantiles need data: a position needs `1 / (1 − quantile)` training values (1,000 for the
//! default 99.9th percentile) before it is judged, and training keeps a fixed-size uniform
//! sample of each position's values (reservoir sampling) so memory does not grow with the log.

mod algorithm;
mod errors;
mod hyperparams;

pub use algorithm::{LineRanges, ParamRanges, ValueRange, ValueSampler, numeric_value, unit_of};
pub use errors::ParamRangeError;
pub use hyperparams::{ParamRangeParams, ParamRangeValidParams};
