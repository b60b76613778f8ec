//! A decoding step's attention and MLP on plain rows: the projections' f32
//! rows go through rotation, the cache and attention to the output
//! projection, and through SwiGLU to the down projection, without becoming
//! tensors. The tensor form split heads, transposed, rotated, narrowed,
//! concatenated and cast: some twenty small ops per layer, a tenth of a
//! bf16 step on the Qwen2.5-0.5B shape.
//!
//! Each value is rounded where the tensor form rounds it (the projections
//! to the model's dtype, rotation in that dtype's arithmetic, the attention
//! output once), so both forms give the same bits.

use super::{Attention, Cache, Mlp, Mode, Rows};
use crate::model::attend_one;
use crate::model::gemv;
use crate::model::lora::Linear;
use candle_core::{DType, Device, Result, Tensor, WithDType};
use half::bf16;

/// A dtype the model computes in, for rounding and rotating in it.
pub(super) trait Float: WithDType + gemv::Element {
    /// `value` rounded to the nearest `Self`, kept in f32, in arithmetic
    /// that vectorises.
    fn round_in_f32(value: f32) -> f32;

    /// A value [`Float::round_in_f32`] gave, as `Self` (exactly).
    fn of_rounded(value: f32) -> Self;
}

impl Float for f32 {
    #[inline(always)]
    fn round_in_f32(value: f32) -> f32 {
        value
    }

    #[inline(always)]
    fn of_rounded(value: f32) -> Self {
        value
    }
}

impl Float for bf16 {
    /// To nearest, ties to even, as `bf16::from_f32`; NaN stays NaN.
    #[inline(always)]
    fn round_in_f32(value: f32) -> f32 {
        let bits = value.to_bits();
        let up = bits.wrapping_add(0x7fff + ((bits >> 16) & 1));
        let rounded = f32::from_bits(up & 0xffff_0000);
        if value.is_nan() { value } else { rounded }
    }

    #[inline(always)]
    fn of_rounded(value: f32) -> Self {
        bf16::from_bits((value.to_bits() >> 16) as u16)
    }
}

/// The rotation tables of a step's rows, `[rows, head_dim / 2]` each, as
/// the f32 values of the model dtype's tables.
pub(super) struct Tables {
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Tables {
    /// The tables of `cos` and `sin` (`[rows, 1, head_dim / 2]`), when the
    /// step can take the plain path: CPU, f32 or bf16.
    pub(super) fn of(cos: &Tensor, sin: &Tensor) -> Result<Option<Tables>> {
        if !matches!(cos.device(), Device::Cpu) || !matches!(cos.dtype(), DType::F32 | DType::BF16)
        {
            return Ok(None);
        }
        Ok(Some(Tables {
            cos: gemv::rows_of(cos)?,
            sin: gemv::rows_of(sin)?,
        }))
    }
}

/// The attention output of the step's rows `x` `[1, rows, hidden]`, or
/// `None` where the plain path does not apply (per-head norms, projections
/// that do not take rows, another dtype or device).
pub(super) fn attention(
    attn: &Attention,
    x: &Tensor,
    rows: &Rows,
    caches: &mut [&mut Cache],
    layer: usize,
    mode: Mode,
) -> Result<Option<Tensor>> {
    let Some(tables) = &rows.tables else {
        return Ok(None);
    };
    if !applies(attn, caches.len(), x.dtype(), mode) {
        return Ok(None);
    }
    let inputs = gemv::rows_of(x)?;
    let y = match x.dtype() {
        DType::F32 => attention_values::<f32>(attn, &inputs, tables, caches, layer, mode)?,
        DType::BF16 => attention_values::<bf16>(attn, &inputs, tables, caches, layer, mode)?,
        _ => return Ok(None),
    };
    Ok(Some(attn.o_proj.rows_tensor(y, x)?))
}

/// [`attention`] of the rows `inputs` (values of `T`): the output
/// projection's values, not yet rounded to `T`.
pub(super) fn attention_values<T: Float>(
    attn: &Attention,
    inputs: &[f32],
    tables: &Tables,
    caches: &mut [&mut Cache],
    layer: usize,
    mode: Mode,
) -> Result<Vec<f32>> {
    let projections = [&attn.q_proj, &attn.k_proj, &attn.v_proj];
    let qkv = Linear::rows_together(&projections, inputs, mode)?;
    let out = attend_rows::<T>(attn, &qkv, tables, caches, layer)?;
    attn.o_proj.rows(&out, mode)
}

/// The MLP of `x` (`[..., hidden]`, a few rows, or a bf16 model's rows
/// where the CPU multiplies bf16 pairs), or `None` where the plain path
/// does not apply: gate and up in one parallel section, SwiGLU on the
/// plain values ([`swiglu`]), the down projection on them.
pub(super) fn mlp(mlp: &Mlp, x: &Tensor, mode: Mode) -> Result<Option<Tensor>> {
    let rows = x.elem_count() / mlp.gate_proj.in_dim().max(1);
    if !matches!(x.device(), Device::Cpu) || !mlp_applies(mlp, rows, x.dtype(), mode) {
        return Ok(None);
    }
    let inputs = gemv::rows_of(x)?;
    let y = match x.dtype() {
        DType::F32 => mlp_values::<f32>(mlp, &inputs, mode)?,
        DType::BF16 => mlp_values::<bf16>(mlp, &inputs, mode)?,
        _ => return Ok(None),
    };
    Ok(Some(mlp.down_proj.rows_tensor(y, x)?))
}

/// Whether [`mlp`] takes `rows` CPU rows of `dtype`.
pub(super) fn mlp_applies(mlp: &Mlp, rows: usize, dtype: DType, mode: Mode) -> bool {
    !mode.train
        && Linear::take_together(&[&mlp.gate_proj, &mlp.up_proj], rows, dtype)
        && mlp.down_proj.takes(rows, dtype)
}

/// [`mlp`] of the rows `inputs` (values of `T`): the down projection's
/// values, not yet rounded to `T`.
pub(super) fn mlp_values<T: Float>(mlp: &Mlp, inputs: &[f32], mode: Mode) -> Result<Vec<f32>> {
    let gate_up = Linear::rows_together(&[&mlp.gate_proj, &mlp.up_proj], inputs, mode)?;
    let act = swiglu::<T>(&gate_up[0], &gate_up[1]);
    mlp.down_proj.rows(&act, mode)
}

/// [`swiglu`] of f32 values: training's forward pass on the CPU.
pub(crate) fn swiglu_f32(gate: &[f32], up: &[f32]) -> Vec<f32> {
    swiglu::<f32>(gate, up)
}

/// Values a [`swiglu`] task takes: a prompt's 128 rows of 4,864 are 38
/// tasks, a decoding step's one row a single one.
const SWIGLU_TASK: usize = 1 << 14;

/// `silu(gate) * up` of the values rounded to `T`, in f32, rounded to `T`
/// once: candle rounds after each operation, so a value may differ from
/// its by one unit in the last place of `T`. A prompt's rows are shared
/// among the threads.
fn swiglu<T: Float>(gate: &[f32], up: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; gate.len()];
    let pieces = out.chunks_mut(SWIGLU_TASK);
    let tasks: Vec<_> = pieces
        .zip(gate.chunks(SWIGLU_TASK).zip(up.chunks(SWIGLU_TASK)))
        .collect();
    let task = |(out, (gate, up)): (&mut [f32], (&[f32], &[f32]))| swiglu_into::<T>(gate, up, out);
    if tasks.len() > 1 {
        crate::pool::crew::for_each_item(tasks, task);
    } else {
        tasks.into_iter().for_each(task);
    }
    out
}

crate::model::wide::widest! {
    /// [`swiglu`] of one task's values into `out`, compiled for the widest
    /// vectors the CPU has, so that the whole loop, `exp` included, runs in
    /// them (a plain loop: `exp`'s `floor` would otherwise be a libm call).
    fn swiglu_into<T: Float>(gate: &[f32], up: &[f32], out: &mut [f32]) {
        for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
            let (g, u) = (T::round_in_f32(g), T::round_in_f32(u));
            *o = T::round_in_f32(g / (1.0 + crate::model::exp::exp(-g)) * u);
        }
    }
}

/// Whether [`attention`] takes `rows` rows of `dtype` through `attn`.
pub(super) fn applies(attn: &Attention, rows: usize, dtype: DType, mode: Mode) -> bool {
    let projections = [&attn.q_proj, &attn.k_proj, &attn.v_proj];
    !mode.train
        && attn.q_norm.is_none()
        && attn.k_norm.is_none()
        && Linear::take_together(&projections, rows, dtype)
        && attn.o_proj.takes(rows, dtype)
}

/// Each row's queries and keys (`qkv[0]`, `qkv[1]`, rounded to `T`) rotated
/// to its position, its keys and values appended to its cache, and its
/// queries' attention over that cache: rows of `heads * head_dim` values,
/// rounded to `T` and back, the output projection's input.
fn attend_rows<T: Float>(
    attn: &Attention,
    qkv: &[Vec<f32>],
    tables: &Tables,
    caches: &mut [&mut Cache],
    layer: usize,
) -> Result<Vec<f32>> {
    let (heads, kv_heads, d) = (attn.heads, attn.kv_heads, attn.head_dim);
    let [q, k, v] = [0, 1, 2].map(|i| rounded::<T>(&qkv[i]));
    let mut out = Vec::with_capacity(caches.len() * heads * d);
    for (i, cache) in caches.iter_mut().enumerate() {
        let cos = &tables.cos[i * d / 2..(i + 1) * d / 2];
        let sin = &tables.sin[i * d / 2..(i + 1) * d / 2];
        let query = rotated(&q[i * heads * d..(i + 1) * heads * d], cos, sin);
        let key = rotated(&k[i * kv_heads * d..(i + 1) * kv_heads * d], cos, sin);
        let value = v[i * kv_heads * d..(i + 1) * kv_heads * d].to_vec();
        let as_cache_row =
            |values: Vec<T>| Tensor::from_vec(values, (1, kv_heads, 1, d), &Device::Cpu);
        let (keys, values) = cache.append(layer, &as_cache_row(key)?, &as_cache_row(value)?)?;
        let query: Vec<f32> = query.iter().map(|q| q.widen()).collect();
        let attended = attend_one::over_cache::<T>(&query, &keys, &values, heads)?;
        out.extend(attended.into_iter().map(T::round_in_f32));
    }
    Ok(out)
}

/// `values` rounded to `T`, in arithmetic that vectorises.
fn rounded<T: Float>(values: &[f32]) -> Vec<T> {
    values
        .iter()
        .map(|&x| T::of_rounded(T::round_in_f32(x)))
        .collect()
}

/// Heads of `d` values (`x`, in `T`) rotated by the tables `cos`, `sin`
/// (`d / 2` values of `T`, in f32) as candle's `rope` does, each product
/// and sum rounded to `T`.
fn rotated<T: Float>(x: &[T], cos: &[f32], sin: &[f32]) -> Vec<T> {
    let mut out = x.to_vec();
    let d = 2 * cos.len();
    for (head, rotated) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        super::prompt_heads::rotate::<T>(head, cos, sin, rotated);
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::model::adapter;
    use crate::model::config::ModelConfig;
    use crate::model::decoder::{Cache, Decoder, Mode};
    use crate::model::lora::LoraSpec;
    use crate::model::weights::RandomWeights;
    use candle_core::{DType, Device, Tensor};

    fn decoder(dtype: DType) -> Decoder {
        // Qwen2: biases on q, k and v; 4 query heads over 2 key heads.
        let json = serde_json::json!({
            "architectures": ["Qwen2ForCausalLM"], "hidden_size": 64,
            "intermediate_size": 96, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2,
            "vocab_size": 120, "tie_word_embeddings": true
        });
        let config = ModelConfig::from_json(&json).unwrap();
        let weights = RandomWeights {
            config: config.clone(),
            device: Device::Cpu,
            dtype,
            seed: 3,
        };
        let mut decoder = Decoder::load(config, &weights).unwrap();
        adapter::attach_new(&mut decoder, &LoraSpec::all_linear(4, 8.0), 1).unwrap();
        adapter::randomize(&mut decoder, 0.5, 2).unwrap();
        decoder
    }

    #[test]
    fn rounding_in_f32_rounds_as_bf16_from_f32() {
        use super::Float;
        let mut rng = crate::data::rng::SplitMix64::new(5);
        // Random bit patterns (ties to even among them: low halves 0x8000).
        for i in 0..100_000u32 {
            let bits = (rng.next_f64() * u32::MAX as f64) as u32;
            let bits = if i % 10 == 0 {
                bits & 0xffff_0000 | 0x8000
            } else {
                bits
            };
            let value = f32::from_bits(bits);
            let ours = half::bf16::round_in_f32(value);
            let theirs = half::bf16::from_f32(value).to_f32();
            assert!(
                ours.to_bits() == theirs.to_bits() || (ours.is_nan() && theirs.is_nan()),
                "{value:e} ({bits:#x}): {ours:e} against {theirs:e}"
            );
        }
    }

    #[test]
    fn the_plain_mlp_agrees_with_candles_silu_and_product() {
        for dtype in [DType::F32, DType::BF16] {
            let decoder = decoder(dtype);
            let mlp = &decoder.layers[0].mlp;
            let x = Tensor::randn(0f32, 1.0, (1, 3, 64), &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            for mode in [Mode::BASE, Mode::ADAPTED] {
                let plain = super::mlp(mlp, &x, mode).unwrap().expect("rows on the CPU");
                let gate = mlp.gate_proj.forward(&x, mode).unwrap();
                let up = mlp.up_proj.forward(&x, mode).unwrap();
                let act = (candle_nn::ops::silu(&gate).unwrap() * up).unwrap();
                let tensors = mlp.down_proj.forward(&act, mode).unwrap();
                let tensors = tensors.to_dtype(DType::F32).unwrap();
                let plain = plain.to_dtype(DType::F32).unwrap();
                let diff = crate::model::max_abs_diff(&plain, &tensors).unwrap();
                let largest =
                    crate::model::max_abs_diff(&tensors, &tensors.zeros_like().unwrap()).unwrap();
                // bf16: activations a unit in the last place apart (2^-8)
                // here and there; f32: exp within 2 ulp.
                let bound = if dtype == DType::BF16 { 2e-2 } else { 1e-6 };
                assert!(diff <= bound * largest, "{dtype:?}: {diff} of {largest}");
            }
        }
    }

    /// The prompt `tokens` read into a fresh cache.
    fn prefilled(decoder: &Decoder, tokens: &[u32], mode: Mode) -> Cache {
        let mut cache = Cache::new(decoder.layers.len());
        let ids = Tensor::new(tokens, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        decoder.hidden(&ids, Some(&mut cache), None, mode).unwrap();
        cache
    }

    #[test]
    fn a_step_on_plain_rows_gives_the_bits_of_the_tensor_form() {
        for dtype in [DType::F32, DType::BF16] {
            let decoder = decoder(dtype);
            let pair = Mode {
                adapter: true,
                base_rows: 1,
                ..Mode::BASE
            };
            // Every layer takes the plain path (`plain_layers`).
            for layer in &decoder.layers {
                assert!(super::applies(&layer.attn, 2, dtype, pair));
                assert!(super::mlp_applies(&layer.mlp, 2, dtype, pair));
            }
            let (base_prompt, adapted_prompt) = ([5u32, 9, 17, 2, 44], [7u32, 3, 88]);
            let mut caches = [
                prefilled(&decoder, &base_prompt, Mode::BASE),
                prefilled(&decoder, &adapted_prompt, Mode::ADAPTED),
            ];
            let [base_cache, adapted_cache] = &mut caches;
            let mut rows = [base_cache, adapted_cache];
            let plain = decoder.step_rows(&[11, 12], &mut rows, pair).unwrap();
            // Each row alone through the tensor form (a one-token pass).
            for (row, (prompt, token, mode)) in [
                (&base_prompt[..], 11u32, Mode::BASE),
                (&adapted_prompt[..], 12, Mode::ADAPTED),
            ]
            .into_iter()
            .enumerate()
            {
                let mut cache = prefilled(&decoder, prompt, mode);
                let ids = Tensor::new(&[token], &Device::Cpu)
                    .unwrap()
                    .unsqueeze(0)
                    .unwrap();
                let general = decoder.hidden(&ids, Some(&mut cache), None, mode).unwrap();
                let ours = plain.narrow(1, row, 1).unwrap();
                let diff = crate::model::max_abs_diff(
                    &ours.to_dtype(DType::F32).unwrap(),
                    &general.to_dtype(DType::F32).unwrap(),
                )
                .unwrap();
                assert_eq!(diff, 0.0, "{dtype:?}, row {row}");
            }
        }
    }
}
