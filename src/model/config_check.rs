//! `config.json` against the weights: every tensor the decoder reads must
//! exist with the shape the config gives it. Checked from the safetensors
//! headers before anything is loaded, so a config that disagrees with its
//! weights (or asks for a vocabulary of 10^12) is named, not allocated.

use super::config::ModelConfig;
use super::weights::TensorSource;

/// The first disagreement between `config` and `weights`, in words.
pub fn check(config: &ModelConfig, weights: &dyn TensorSource) -> Result<(), String> {
    check_layer_count(config, weights)?;
    for name in config.tensor_names() {
        let Some((want, keys)) = config.tensor_shape(&name) else {
            continue;
        };
        match weights.shape(&name) {
            // Some checkpoints tie the output projection without saying so.
            None if name == "lm_head.weight" => {}
            None => {
                return Err(format!(
                    "the weights have no tensor `{name}`, which config.json ({}) expects",
                    with_values(keys, config)
                ));
            }
            Some(got) if got != want => {
                return Err(format!(
                    "`{name}` is {got:?} in the weights, but config.json's {} make it {want:?}",
                    with_values(keys, config)
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// `num_hidden_layers` against the layers present, counted without ever
/// looking past one layer beyond what the config claims.
fn check_layer_count(config: &ModelConfig, weights: &dyn TensorSource) -> Result<(), String> {
    let has_layer =
        |i: &usize| weights.contains(&format!("model.layers.{i}.input_layernorm.weight"));
    let claimed = config.num_layers;
    let present = (0..claimed).take_while(has_layer).count();
    let more = has_layer(&claimed);
    if present == claimed && !more {
        return Ok(());
    }
    let found = if more {
        format!("more than {claimed}")
    } else {
        present.to_string()
    };
    Err(format!(
        "config.json's num_hidden_layers is {claimed}, but the weights hold {found} layers \
         (model.layers.N.input_layernorm.weight)"
    ))
}

/// "vocab_size, hidden_size" -> "vocab_size 151936, hidden_size 896".
fn with_values(keys: &str, c: &ModelConfig) -> String {
    let value = |key: &str| match key {
        "vocab_size" => Some(c.vocab_size),
        "hidden_size" => Some(c.hidden_size),
        "intermediate_size" => Some(c.intermediate_size),
        "num_attention_heads" => Some(c.num_heads),
        "num_key_value_heads" => Some(c.num_kv_heads),
        "head_dim" => Some(c.head_dim),
        _ => None,
    };
    keys.split(' ')
        .map(|word| {
            let key = word.trim_end_matches(',');
            match value(key) {
                Some(v) => format!("{key} {v}{}", &word[key.len()..]),
                None => word.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::weights::RandomWeights;
    use candle_core::{DType, Device};

    fn config() -> ModelConfig {
        ModelConfig::from_json(&serde_json::json!({
            "architectures": ["Qwen2ForCausalLM"], "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "vocab_size": 100, "tie_word_embeddings": true
        }))
        .unwrap()
    }

    fn weights_of(config: ModelConfig) -> RandomWeights {
        RandomWeights {
            config,
            device: Device::Cpu,
            dtype: DType::F32,
            seed: 0,
        }
    }

    #[test]
    fn matching_config_passes() {
        assert_eq!(check(&config(), &weights_of(config())), Ok(()));
    }

    type Edit = fn(&mut ModelConfig);

    /// The check's message for the tiny config changed by `edit`, against
    /// weights of the unchanged one.
    fn error_after(edit: impl FnOnce(&mut ModelConfig)) -> String {
        let mut changed = config();
        edit(&mut changed);
        check(&changed, &weights_of(config())).unwrap_err()
    }

    #[test]
    fn each_disagreement_names_tensor_key_and_shapes() {
        assert_eq!(
            error_after(|c| c.hidden_size = 48),
            "`model.embed_tokens.weight` is [100, 32] in the weights, but config.json's \
             vocab_size 100, hidden_size 48 make it [100, 48]"
        );
        let cases: [(Edit, &str); 4] = [
            (
                |c| c.vocab_size = 1_000_000_000_000,
                "vocab_size 1000000000000",
            ),
            (
                |c| c.num_layers = 1_000_000_000,
                "num_hidden_layers is 1000000000, but the weights hold 2 layers",
            ),
            (|c| c.num_layers = 1, "hold more than 1 layers"),
            (
                |c| c.intermediate_size = 60,
                "`model.layers.0.mlp.gate_proj.weight` is [64, 32] in the weights, but \
                 config.json's intermediate_size 60, hidden_size 32 make it [60, 32]",
            ),
        ];
        for (edit, expected) in cases {
            let e = error_after(edit);
            assert!(e.contains(expected), "{e}");
        }
    }
}
