//! Writes a LoRA adapter with tunebench's own writer (random non-zero A and
//! B, all seven projections, r 4, alpha 8), for the parity fixtures:
//! `hf_loss.py` must load it without missing keys and agree on the loss.
//!
//!     cargo run --example parity_adapter -- MODEL_DIR OUT_DIR SEED

use tunebench::model::adapter;
use tunebench::model::lora::LoraSpec;
use tunebench::model::{LoadOptions, Model};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model_dir, out, seed] = args.as_slice() else {
        anyhow::bail!("usage: parity_adapter MODEL_DIR OUT_DIR SEED");
    };
    let mut model = Model::load(model_dir, &LoadOptions::default())?;
    // Keep in step with tests/parity.rs.
    let spec = LoraSpec::all_linear(4, 8.0);
    adapter::attach_new(&mut model.decoder, &spec, seed.parse()?)?;
    adapter::randomize(&mut model.decoder, 0.3, seed.parse()?)?;
    adapter::save(&model.decoder, &spec, model_dir, std::path::Path::new(out))?;
    Ok(())
}
