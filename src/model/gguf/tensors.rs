//! A GGUF file's tensors under the names the decoder reads (transformers'
//! names), dequantized on load into the working dtype.

use super::GgufFile;
use super::config::permutes_qk;
use crate::model::ModelError;
use crate::model::config::ModelConfig;
use crate::model::weights::TensorSource;
use candle_core::quantized::ggml_file::qtensor_from_ggml;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

/// transformers' module names inside a layer and llama.cpp's for each.
const LAYER_MODULES: [(&str, &str); 11] = [
    ("input_layernorm", "attn_norm"),
    ("post_attention_layernorm", "ffn_norm"),
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("self_attn.q_norm", "attn_q_norm"),
    ("self_attn.k_norm", "attn_k_norm"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
];

/// The same outside the layers (`lm_head` is handled whole: it has no bias).
const MODEL_MODULES: [(&str, &str); 2] = [
    ("model.embed_tokens", "token_embd"),
    ("model.norm", "output_norm"),
];

/// llama.cpp's name for a tensor the decoder asks for by transformers' name.
pub fn gguf_name(name: &str) -> Option<String> {
    if name == "lm_head.weight" {
        return Some("output.weight".into());
    }
    let (module, kind) = name.rsplit_once('.')?;
    if !matches!(kind, "weight" | "bias") {
        return None;
    }
    let (prefix, module, table) = match module.strip_prefix("model.layers.") {
        Some(rest) => {
            let (layer, module) = rest.split_once('.')?;
            layer.parse::<usize>().ok()?;
            (format!("blk.{layer}."), module, &LAYER_MODULES[..])
        }
        None => (String::new(), module, &MODEL_MODULES[..]),
    };
    let (_, short) = table.iter().find(|(hf, _)| *hf == module)?;
    Some(format!("{prefix}{short}.{kind}"))
}

/// The tensors of an open GGUF file as a decoder's source.
pub struct GgufWeights<'a> {
    file: &'a GgufFile,
    dtype: DType,
    device: Device,
    /// Query and key heads, when their rows must be put back in
    /// transformers' order (see [`unpermute`]).
    permuted_heads: Option<(usize, usize)>,
}

impl<'a> GgufWeights<'a> {
    pub fn new(
        file: &'a GgufFile,
        config: &ModelConfig,
        dtype: DType,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let permuted = permutes_qk(file.architecture()?);
        Ok(GgufWeights {
            file,
            dtype,
            device: device.clone(),
            permuted_heads: permuted.then_some((config.num_heads, config.num_kv_heads)),
        })
    }
}

impl GgufFile {
    /// A tensor by llama.cpp's name, dequantized to f32 on the CPU.
    pub fn read_f32(&self, gguf_name: &str) -> candle_core::Result<Tensor> {
        self.read_blocks(gguf_name)?.dequantize(&Device::Cpu)
    }

    /// A tensor by llama.cpp's name in the file's own type, on the CPU.
    pub fn read_blocks(&self, gguf_name: &str) -> candle_core::Result<QTensor> {
        let info = self.content.tensor_infos.get(gguf_name).ok_or_else(|| {
            candle_core::Error::Msg(format!("{}: no tensor `{gguf_name}`", self.path.display()))
        })?;
        let mut reader = std::fs::File::open(&self.path)?;
        info.read(&mut reader, self.content.tensor_data_offset, &Device::Cpu)
            .map_err(|e| {
                candle_core::Error::Msg(format!(
                    "{}: tensor `{gguf_name}`: {e}",
                    self.path.display()
                ))
            })
    }

    /// Llama 3's RoPE frequency factors, if the file has them.
    pub(super) fn rope_freq_factors(&self) -> Result<Option<Vec<f32>>, ModelError> {
        if !self.content.tensor_infos.contains_key("rope_freqs.weight") {
            return Ok(None);
        }
        self.read_f32("rope_freqs.weight")
            .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
            .map(Some)
            .map_err(|e| self.error(e))
    }
}

/// Undoes llama.cpp's q/k row permutation. Its converter reorders each
/// head's rows from transformers' rotary layout (first half, second half)
/// to interleaved pairs: `reshape(heads, 2, d/2, ...).swapaxes(1, 2)`; this
/// is the inverse, `reshape(heads, d/2, 2, ...).swapaxes(1, 2)`.
pub fn unpermute(t: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let dims = t.dims().to_vec();
    let mut split = vec![heads, dims[0] / heads / 2, 2];
    split.extend_from_slice(&dims[1..]);
    t.reshape(split)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)
}

/// The new row order of [`unpermute`] for `rows` rows in `heads` heads:
/// entry `i` is the stored row that becomes row `i`.
fn unpermuted_rows(rows: usize, heads: usize) -> Vec<usize> {
    let d = rows / heads;
    (0..rows)
        .map(|new| {
            let (head, within) = (new / d, new % d);
            let (half, i) = (within / (d / 2), within % (d / 2));
            head * d + i * 2 + half
        })
        .collect()
}

/// [`unpermute`] on quantized blocks: each row's blocks move whole.
fn unpermute_blocks(q: &QTensor, heads: usize) -> candle_core::Result<QTensor> {
    let dims = q.shape().dims().to_vec();
    let data = q.data()?;
    let row_bytes = data.len() / dims[0];
    let mut moved = Vec::with_capacity(data.len());
    for old in unpermuted_rows(dims[0], heads) {
        moved.extend_from_slice(&data[old * row_bytes..(old + 1) * row_bytes]);
    }
    qtensor_from_ggml(q.dtype(), &moved, dims, &Device::Cpu)
}

impl GgufWeights<'_> {
    /// The heads a tensor's rows are permuted in, for llama.cpp's q and k.
    fn permuted_heads_of(&self, name: &str) -> Option<usize> {
        let (q_heads, kv_heads) = self.permuted_heads?;
        if name.contains(".self_attn.q_proj.") {
            Some(q_heads)
        } else if name.contains(".self_attn.k_proj.") {
            Some(kv_heads)
        } else {
            None
        }
    }

    fn gguf_name_of(name: &str) -> candle_core::Result<String> {
        gguf_name(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("no GGUF tensor maps to `{name}`")))
    }
}

impl TensorSource for GgufWeights<'_> {
    fn get(&self, name: &str) -> candle_core::Result<Tensor> {
        let mut tensor = self.file.read_f32(&Self::gguf_name_of(name)?)?;
        if let Some(heads) = self.permuted_heads_of(name) {
            tensor = unpermute(&tensor, heads)?;
        }
        tensor.to_dtype(self.dtype)?.to_device(&self.device)
    }

    fn get_blocks(&self, name: &str) -> candle_core::Result<Option<QTensor>> {
        let blocks = self.file.read_blocks(&Self::gguf_name_of(name)?)?;
        if matches!(
            blocks.dtype(),
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16
        ) {
            return Ok(None);
        }
        match self.permuted_heads_of(name) {
            Some(heads) => unpermute_blocks(&blocks, heads).map(Some),
            None => Ok(Some(blocks)),
        }
    }

    fn contains(&self, name: &str) -> bool {
        gguf_name(name).is_some_and(|n| self.file.content.tensor_infos.contains_key(&n))
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let info = self.file.content.tensor_infos.get(&gguf_name(name)?)?;
        Some(info.shape.dims().to_vec())
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn dtype(&self) -> DType {
        self.dtype
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_llama_cpp() {
        let cases = [
            ("model.embed_tokens.weight", "token_embd.weight"),
            ("lm_head.weight", "output.weight"),
            ("model.norm.weight", "output_norm.weight"),
            (
                "model.layers.12.input_layernorm.weight",
                "blk.12.attn_norm.weight",
            ),
            (
                "model.layers.0.post_attention_layernorm.weight",
                "blk.0.ffn_norm.weight",
            ),
            ("model.layers.3.self_attn.q_proj.bias", "blk.3.attn_q.bias"),
            (
                "model.layers.3.self_attn.o_proj.weight",
                "blk.3.attn_output.weight",
            ),
            (
                "model.layers.1.self_attn.k_norm.weight",
                "blk.1.attn_k_norm.weight",
            ),
            (
                "model.layers.2.mlp.down_proj.weight",
                "blk.2.ffn_down.weight",
            ),
        ];
        for (hf, gguf) in cases {
            assert_eq!(gguf_name(hf).as_deref(), Some(gguf), "{hf}");
        }
        for unknown in [
            "model.layers.x.mlp.up_proj.weight",
            "model.layers.0.model.norm.weight",
            "model.embed_tokens.scale",
            "model.layers.0.mlp.act.weight",
        ] {
            assert_eq!(gguf_name(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn block_rows_move_as_the_dense_rows_do() {
        // 2 heads of 4 rows over 32 inputs: Q8_0 keeps each row in one block.
        let rows: Vec<f32> = (0..8 * 32).map(|i| (i / 32) as f32).collect();
        let dense = Tensor::from_vec(rows, (8, 32), &Device::Cpu).unwrap();
        let blocks = QTensor::quantize(&dense, GgmlDType::Q8_0).unwrap();
        let moved = unpermute_blocks(&blocks, 2)
            .unwrap()
            .dequantize(&Device::Cpu)
            .unwrap();
        let widened = blocks.dequantize(&Device::Cpu).unwrap();
        let expected = unpermute(&widened, 2).unwrap();
        assert_eq!(crate::model::max_abs_diff(&moved, &expected).unwrap(), 0.0);
    }

    #[test]
    fn unpermute_restores_the_rotary_halves() {
        // One head of width 4 over one input: transformers' rows [a0 a1 b0 b1]
        // are stored interleaved [a0 b0 a1 b1].
        let stored = Tensor::new(&[[10f32], [20.], [11.], [21.]], &Device::Cpu).unwrap();
        let rows = unpermute(&stored, 1).unwrap().flatten_all().unwrap();
        assert_eq!(rows.to_vec1::<f32>().unwrap(), [10., 11., 20., 21.]);
    }
}
