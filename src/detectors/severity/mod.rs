//! Severity rules on events: an ERROR (or worse) line that is not a routine error.
//!
//! Many systems log some errors all day long (a refused connection the client retries), and
//! an operator learns to ignore them; what matters is an error they have not seen, or a
//! message that is usually harmless turning up at a severe level. So the rule is relative to
//! training: a line at or above `min_level` is anomalous when its template was logged at that
//! level or above at most `max(max_count, max_share × its training occurrences)` times. A
//! template never seen before qualifies (it was logged at that level zero times), and so does
//! one seen 50,000 times at INFO and now at ERROR, while the 600 daily "connection refused"
//! errors do not — their bursts are the window detectors' business.
//!
//! The score is that limit over the line's count at its level (half a line when none): 1 at
//! the limit, larger the rarer the line is at its severity. Like `rare_template` it reads
//! categorical counts, not a feature matrix, so it keeps linfa's shape (checked params, `fit`)
//! with its own record type.

mod algorithm;
mod detector;
mod errors;
mod hyperparams;

pub use algorithm::{LevelCounts, SeverityRule};
pub use detector::SeverityDetector;
pub use errors::SeverityError;
pub use hyperparams::{SeverityParams, SeverityValidParams};
