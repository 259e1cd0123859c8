//! Count invariants over sessions, after Lou et al., "Mining Invariants from Console Logs for
//! System Problem Detection" (USENIX ATC 2010), restricted to pairs.
//!
//! A workflow that is carried out correctly leaves fixed relations between its event counts:
//! every block that is allocated is received three times and stored three times, every opened
//! file is closed. Such a relation, `p × count(a) = q × count(b)`, holds in (nearly) every
//! training session that has either event; a session that breaks it did not finish — or
//! repeated — a step. That finds the failures that leave *no* error message, which neither
//! z-scores nor rare templates see.
//!
//! The second signal is an event that almost no session has: a template present in at most
//! `rare_share` of the training sessions. On real systems those are the error paths
//! (exceptions, "unexpected error …"), while the normal paths run in most sessions.
//!
//! Rarity is judged within the session's service when the service has enough sessions of its
//! own (see [`ServiceInvariants`]): a branch that is common in one workflow is not an error
//! because other services outnumber it.
//!
//! Both thresholds are unsupervised statistics of the training sessions: an invariant must
//! hold in `min_support` of the sessions it concerns, and rarity is a share of sessions. No
//! label is read. The support need not be near 1, because a relation is judged together with
//! how it is broken: a login that fails in 5 % of requests breaks "one token per login" in a
//! common way (no token), a second normal path never flagged; a session that issues five
//! tokens breaks it in a way at most `rare_share` of sessions do, and is. (At 98 % support
//! that relation was no invariant, and three sessions looping on the token step went unseen.)

mod algorithm;
mod detector;
mod errors;
mod hyperparams;

pub use algorithm::{Invariant, ServiceInvariants, SessionInvariants, Violation};
pub use detector::InvariantsDetector;
pub use errors::InvariantsError;
pub use hyperparams::{InvariantsParams, InvariantsValidParams};
