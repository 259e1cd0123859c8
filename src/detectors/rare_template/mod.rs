//! Rare and never-seen templates: an event is anomalous when its template occurred at most
//! `max_count` times in the training range (a template first seen in the scored batch has a
//! training count of zero).
//!
//! Template frequencies are categorical, not a feature matrix, so this detector keeps linfa's
//! shape (checked params, `fit`, `predict`) with its own record type: a list of template counts.

mod algorithm;
mod detector;
mod errors;
mod hyperparams;

pub use algorithm::{RareTemplate, TemplateCounts};
pub use detector::RareTemplateDetector;
pub use errors::RareTemplateError;
pub use hyperparams::{RareTemplateParams, RareTemplateValidParams};
