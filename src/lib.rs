//! loglake: a batch log-anomaly pipeline over a Parquet data lake.
//!
//! The module layout is a map of the pipeline:
//!
//! - [`cli`] parses arguments and dispatches; it holds no pipeline logic.
//! - [`config`] merges `config/loglake.toml`, `LOGLAKE__SECTION__KEY` variables and flags.
//! - [`lake`] owns every path in the lake and every Parquet write (atomic partition commits).
//! - [`db`] owns every SQL statement (PostgreSQL or the embedded SQLite default).
//! - [`stages`] has one module per numbered stage (`00-init` … `06-report`).
//! - [`parse`] turns raw lines into events: header formats, timestamps, masking, templates.
//! - [`detectors`] holds the models, each shaped like a linfa algorithm, behind one contract
//!   that `04-train` and `05-detect` loop over.
//! - [`records`] holds the typed rows stages hand to the database.
//! - [`generate`] writes synthetic logs with ground-truth labels; [`evaluate`] scores
//!   detections against such labels.

pub mod alerts;
pub mod cli;
pub mod config;
pub mod db;
pub mod detectors;
pub mod evaluate;
pub mod features;
pub mod generate;
pub mod incidents;
pub mod lake;
pub mod operator;
pub mod parse;
pub mod records;
pub mod secrets;
pub mod serve;
pub mod stages;
pub mod status;
pub mod tokens;
pub mod vacuum;
pub mod workspace;
