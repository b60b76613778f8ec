//! LoRA training: configuration, batches, optimizer and schedule, the run
//! directory and the loop that ties them together.

pub mod batches;
pub mod config;
pub mod estimate;
pub mod optim;
pub mod run_dir;
pub mod run_lock;
pub mod schedule;
pub mod trainer;
