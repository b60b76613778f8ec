//! Measuring models: loss and perplexity on a dataset.

pub mod loss;
