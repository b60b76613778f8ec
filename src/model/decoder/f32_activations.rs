//! Training on a CPU over a bf16 base: the frozen projections, embedding
//! and output projection stay bf16 (half the memory, read as stored by the
//! bf16 kernels), while the activations, the norms' weights and the biases
//! become f32.
//!
//! On a CPU, candle's bf16 element-wise ops, softmax and attention products
//! ran slower than their f32 forms (SmolLM2 at 1,024 tokens: a bf16 step
//! took 8.2 s against 5.0 s in f32), and the bf16 pair kernels round their
//! inputs to bf16 anyway, so f32 activations cost the products nothing and
//! drop a rounding from every other op. On a GPU bf16 activations are the
//! fast form, and inference keeps the weights' dtype everywhere.

use super::{Decoder, RmsNorm};
use candle_core::{DType, Result};

impl Decoder {
    /// Readies the decoder for training: on a CPU, a bf16 base trains with
    /// f32 activations. Nothing changes otherwise.
    pub fn prepare_for_training(&mut self) -> Result<()> {
        if self.dtype == DType::BF16 && self.device().is_cpu() {
            self.activations_in(DType::F32)?;
        }
        Ok(())
    }

    /// The activations' dtype.
    pub fn activations(&self) -> DType {
        self.activations
    }

    /// Passes then run in `dtype`: the small tensors that meet activations
    /// element by element (norm weights, biases) take it too.
    fn activations_in(&mut self, dtype: DType) -> Result<()> {
        let cast = |norm: &mut RmsNorm| -> Result<()> {
            norm.weight = norm.weight.to_dtype(dtype)?;
            Ok(())
        };
        cast(&mut self.norm)?;
        for layer in &mut self.layers {
            cast(&mut layer.input_norm)?;
            cast(&mut layer.post_norm)?;
            for norm in [&mut layer.attn.q_norm, &mut layer.attn.k_norm]
                .into_iter()
                .flatten()
            {
                cast(norm)?;
            }
        }
        let mut cast_bias = Ok(());
        self.for_each_projection_mut(|_, _, linear| {
            if let Some(bias) = &linear.bias {
                match bias.to_dtype(dtype) {
                    Ok(bias) => linear.bias = Some(bias),
                    Err(e) => cast_bias = Err(e),
                }
            }
        });
        cast_bias?;
        self.activations = dtype;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::model::adapter;
    use crate::model::config::ModelConfig;
    use crate::model::decoder::{Decoder, Mode};
    use crate::model::lora::LoraSpec;
    use crate::model::loss::summed_nll;
    use crate::model::weights::{RandomWeights, TensorSource};
    use candle_core::{DType, Device, Tensor};

    /// A source's tensors widened to f32: the f32 model on the same
    /// (bf16-rounded) weights.
    struct Widened(RandomWeights);

    impl TensorSource for Widened {
        fn get(&self, name: &str) -> candle_core::Result<Tensor> {
            self.0.get(name)?.to_dtype(DType::F32)
        }
        fn contains(&self, name: &str) -> bool {
            self.0.contains(name)
        }
        fn shape(&self, name: &str) -> Option<Vec<usize>> {
            self.0.shape(name)
        }
        fn device(&self) -> &Device {
            self.0.device()
        }
        fn dtype(&self) -> DType {
            DType::F32
        }
    }

    /// The summed loss over every position and the adapter's gradients.
    fn loss_and_gradients(decoder: &Decoder, ids: &[u32]) -> (f32, DType, Vec<Tensor>) {
        let mode = Mode::training(0);
        let ids_tensor = Tensor::new(ids, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let hidden = decoder.hidden(&ids_tensor, None, None, mode).unwrap();
        let (_, t, h) = hidden.dims3().unwrap();
        let rows = hidden.reshape((t, h)).unwrap();
        let positions: Vec<u32> = (0..t as u32 - 1).collect();
        let sum = summed_nll(decoder, &rows, &positions, &ids[1..], true).unwrap();
        let store = sum.backward().unwrap();
        let gradients = crate::train::trainer::lora_params(decoder)
            .iter()
            .map(|p| store.get(&p.var).expect("a gradient per factor").clone())
            .collect();
        (sum.to_scalar().unwrap(), hidden.dtype(), gradients)
    }

    #[test]
    fn a_bf16_base_trains_with_f32_activations_as_the_f32_model_does() {
        // Qwen2 has biases on q, k and v; Qwen3 norms q and k per head.
        for arch in ["Qwen2ForCausalLM", "Qwen3ForCausalLM"] {
            let json = serde_json::json!({
                "architectures": [arch], "hidden_size": 64, "intermediate_size": 96,
                "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                "vocab_size": 300, "tie_word_embeddings": true
            });
            let config = ModelConfig::from_json(&json).unwrap();
            let source = RandomWeights {
                config: config.clone(),
                device: Device::Cpu,
                dtype: DType::BF16,
                seed: 7,
            };
            // Some projections without an adapter: their frozen products
            // and input gradients take the plain frozen op.
            let spec = LoraSpec {
                targets: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
                ..LoraSpec::all_linear(4, 8.0)
            };
            let ready = |mut decoder: Decoder| {
                adapter::attach_new(&mut decoder, &spec, 1).unwrap();
                adapter::randomize(&mut decoder, 0.3, 2).unwrap();
                decoder
            };
            let mut mixed = ready(Decoder::load(config.clone(), &source).unwrap());
            mixed.prepare_for_training().unwrap();
            let f32_model = ready(Decoder::load(config, &Widened(source)).unwrap());
            let ids: Vec<u32> = (0..40).map(|i| (i * 37 + 5) % 300).collect();

            let (loss, dtype, gradients) = loss_and_gradients(&mixed, &ids);
            let (want, _, want_gradients) = loss_and_gradients(&f32_model, &ids);
            assert_eq!(dtype, DType::F32, "{arch}: activations");
            // The products may round their inputs to bf16 (pair kernels):
            // a few parts in a thousand.
            assert!(
                (loss - want).abs() < 2e-3 * want.abs(),
                "{arch}: {loss} vs {want}"
            );
            for (got, want) in gradients.iter().zip(&want_gradients) {
                let largest = crate::model::max_abs(want).unwrap();
                let diff = crate::model::max_abs_diff(got, want).unwrap();
                assert!(diff <= 0.03 * largest, "{arch}: {diff} of {largest}");
            }
        }
    }
}
