//! LoRA training: configuration, batches, optimizer and schedule, the run
//! directory and the loop that ties them together.

pub mod batches;
pub mod config;
pub mod estimate;
pub mod handoff;
pub mod optim;
pub mod run_dir;
pub mod run_lock;
pub mod schedule;
#[cfg(test)]
mod step_parity;
pub mod trainer;
pub mod trainer_folder;
