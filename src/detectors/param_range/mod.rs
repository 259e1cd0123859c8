//! Numeric parameters out of their usual range, on single events.
//!
//! A log line often carries a measurement — `duration_ms=45210`, `gc pause 35 ms`,
//! `heap_used=1007MB`, `queue size 12` — and the line that matters is the one whose value is
//! far outside what that message usually reports: a request taking 45 s where a few hundred
//! milliseconds is normal, a heap forty times its usual size. Silver keeps every masked value
//! of a line; this detector learns, per template and parameter position (and per service when
//! the service has enough lines of its own), the median and a low and a high quantile of the
//! values in training, and flags a line whose value lies beyond a quantile by at least
//! `threshold` times the distance from the median to it — the tail's own width, as the window
//! percentile detector does for counts.
//!
//! Why the 99th percentile and one and a half tail widths rather than a more extreme
//! percentile: training data holds the anomalies too. A service that answers 2,000 requests a
//! day, four of them in 50 s, has those four above its 99.9th percentile, which then sits
//! inside them and hides them; the 99th percentile stays put until 1 % of the values are
//! anomalous (the detector's contamination). Going one and a half tail widths past it reaches
//! about as far into a skewed distribution's tail as one width past the 99.9th: for
//! log-normal latencies, 5.8 standard deviations of the logarithm instead of 6.2.
//!
//! Which scale: measurements are positive and skewed (latencies, sizes), and "ten times the
//! usual" means the same at 10 ms and at 10 s, so they are read as `sign(x)·ln(1 + |x|)`; but
//! on that scale a field spread evenly over a range (a port, an amount) grows a long lower
//! tail that is not there. A value is therefore judged on both scales and the smaller
//! excess counts. A tail width is never taken as less than a factor of `min_factor` around
//! the median: a field that barely moved in training (a TTL within seconds of an hour) is
//! out of range only a factor of 2 per tail width away (at the default threshold beyond about
//! 2.8 times its value, or under about a quarter of it), not at the first wobble.
//!
//! What is not a measurement stays out: a position is judged only when at least
//! `min_numeric_share` of its training values are numbers (an id like `u64919` or a hex
//! transaction id never is) and it took at least `min_distinct` different values (a server id
//! that is one of three numbers, a status code, a constant are codes, whose change is not a
//! matter of magnitude). Identifiers that are all digits and vary (ports, block ids, pids)
//! spread so widely that nothing lies a whole tail width beyond their range. Durations are
//! compared in milliseconds and sizes in bytes whatever unit the line used.
//!
//! Quantiles need data: a position needs `1 / (1 − quantile)` training values (100 for the
//! default 99th percentile) before it is judged, and training keeps a fixed-size uniform
//! sample of each position's values (reservoir sampling) so memory does not grow with the log.

mod algorithm;
mod detector;
mod errors;
mod hyperparams;

pub use algorithm::{LineRanges, ParamRanges, ValueRange, ValueSampler, numeric_value, unit_of};
pub use detector::{ParamRangeDetector, ParamRangeSettings};
pub use errors::ParamRangeError;
pub use hyperparams::{ParamRangeParams, ParamRangeValidParams};
