use thiserror::Error;

#[derive(Debug, Error)]
pub enum RareTemplateError {
    #[error("rare-template min_events must be at least 1")]
    MinEvents,
    #[error(
        "the training range has {got} events, fewer than min_events = {need}: rarity cannot be judged yet \
         (ingest more data or lower detectors.rare_template.min_events)"
    )]
    TooFewEvents { got: u64, need: u64 },
}
