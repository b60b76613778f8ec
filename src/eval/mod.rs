//! Measuring models: loss and perplexity on a dataset, text metrics, checks
//! on generated code, and the base-versus-adapter comparison of
//! `eval --generate` with its results file and report.

pub mod code;
pub mod compare;
pub mod loss;
pub mod metrics;
pub mod records;
pub mod report;
pub mod results;
pub mod summary;
