//! tunebench: a terminal workbench for LoRA fine-tuning of open LLMs.

pub mod alloc;
pub mod cli;
pub mod clock;
pub mod data;
pub mod eval;
pub mod model;
pub mod pool;
pub mod profile;
pub mod train;
pub mod tui;

#[global_allocator]
static ALLOCATOR: profile::Counting = profile::Counting;
