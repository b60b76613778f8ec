//! One decoder for the Llama family (Llama 2/3, Mistral, Qwen2/2.5, Qwen3).
//!
//! Inference uses candle's fused kernels; training (`Mode::train`) uses
//! differentiable forms, because the fused softmax, RMSNorm and RoPE drop
//! gradients silently.

use super::attend::{Visibility, attend};
use super::config::ModelConfig;
pub use super::kv_cache::Cache;
use super::lora::Linear;
use super::rope::Rope;
use super::weights::TensorSource;
use candle_core::{D, DType, Module, Result, Tensor};

/// How a forward pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// Apply the LoRA adapter (when one is attached).
    pub adapter: bool,
    /// Differentiable ops and LoRA dropout.
    pub train: bool,
    /// Seeds this pass's dropout masks, so a resumed run draws the same ones.
    pub dropout_seed: u64,
}

impl Mode {
    pub const BASE: Mode = Mode {
        adapter: false,
        train: false,
        dropout_seed: 0,
    };
    pub const ADAPTED: Mode = Mode {
        adapter: true,
        train: false,
        dropout_seed: 0,
    };

    pub fn training(dropout_seed: u64) -> Mode {
        Mode {
            adapter: true,
            train: true,
            dropout_seed,
        }
    }
}

pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let _label = crate::profile::scope(crate::profile::Label::Norm);
        if !train {
            return candle_nn::ops::rms_norm(&x.contiguous()?, &self.weight, self.eps as f32);
        }
        // As transformers computes it: in f32, then back to the input dtype.
        let dtype = x.dtype();
        let x32 = x.to_dtype(DType::F32)?;
        let variance = x32.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = x32.broadcast_div(&(variance + self.eps)?.sqrt()?)?;
        normed.to_dtype(dtype)?.broadcast_mul(&self.weight)
    }
}

pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

pub struct Layer {
    pub attn: Attention,
    pub mlp: Mlp,
    input_norm: RmsNorm,
    post_norm: RmsNorm,
}

/// One of the seven projections of a layer: where it sits (PEFT's module
/// path) and how to reach it.
pub struct Projection {
    pub group: &'static str,
    pub name: &'static str,
    pub get: fn(&Layer) -> &Linear,
    pub get_mut: fn(&mut Layer) -> &mut Linear,
}

pub const PROJECTIONS: [Projection; 7] = [
    Projection {
        group: "self_attn",
        name: "q_proj",
        get: |l| &l.attn.q_proj,
        get_mut: |l| &mut l.attn.q_proj,
    },
    Projection {
        group: "self_attn",
        name: "k_proj",
        get: |l| &l.attn.k_proj,
        get_mut: |l| &mut l.attn.k_proj,
    },
    Projection {
        group: "self_attn",
        name: "v_proj",
        get: |l| &l.attn.v_proj,
        get_mut: |l| &mut l.attn.v_proj,
    },
    Projection {
        group: "self_attn",
        name: "o_proj",
        get: |l| &l.attn.o_proj,
        get_mut: |l| &mut l.attn.o_proj,
    },
    Projection {
        group: "mlp",
        name: "gate_proj",
        get: |l| &l.mlp.gate_proj,
        get_mut: |l| &mut l.mlp.gate_proj,
    },
    Projection {
        group: "mlp",
        name: "up_proj",
        get: |l| &l.mlp.up_proj,
        get_mut: |l| &mut l.mlp.up_proj,
    },
    Projection {
        group: "mlp",
        name: "down_proj",
        get: |l| &l.mlp.down_proj,
        get_mut: |l| &mut l.mlp.down_proj,
    },
];

impl Projection {
    /// `model.layers.{i}.self_attn.q_proj` and the like.
    pub fn path(&self, layer: usize) -> String {
        format!("model.layers.{layer}.{}.{}", self.group, self.name)
    }
}

pub struct Decoder {
    pub config: ModelConfig,
    embed: Tensor,
    pub layers: Vec<Layer>,
    norm: RmsNorm,
    /// `None` when the output projection is the embedding matrix (tied).
    lm_head: Option<Tensor>,
    rope: Rope,
    pub dtype: DType,
}

fn norm(w: &dyn TensorSource, name: &str, eps: f64) -> Result<RmsNorm> {
    Ok(RmsNorm {
        weight: w.get(name)?,
        eps,
    })
}

fn linear(w: &dyn TensorSource, prefix: &str, bias: bool) -> Result<Linear> {
    let weight = w.get(&format!("{prefix}.weight"))?;
    let bias = if bias {
        Some(w.get(&format!("{prefix}.bias"))?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias))
}

impl Decoder {
    pub fn load(config: ModelConfig, w: &dyn TensorSource) -> Result<Self> {
        let c = &config;
        let eps = c.rms_norm_eps;
        let mut layers = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            let p = format!("model.layers.{i}");
            let a = format!("{p}.self_attn");
            let qk_norm = |name: &str| -> Result<Option<RmsNorm>> {
                if c.qk_norm {
                    norm(w, &format!("{a}.{name}.weight"), eps).map(Some)
                } else {
                    Ok(None)
                }
            };
            let attn = Attention {
                q_proj: linear(w, &format!("{a}.q_proj"), c.qkv_bias)?,
                k_proj: linear(w, &format!("{a}.k_proj"), c.qkv_bias)?,
                v_proj: linear(w, &format!("{a}.v_proj"), c.qkv_bias)?,
                o_proj: linear(w, &format!("{a}.o_proj"), c.o_bias)?,
                q_norm: qk_norm("q_norm")?,
                k_norm: qk_norm("k_norm")?,
                heads: c.num_heads,
                kv_heads: c.num_kv_heads,
                head_dim: c.head_dim,
            };
            let m = format!("{p}.mlp");
            let mlp = Mlp {
                gate_proj: linear(w, &format!("{m}.gate_proj"), c.mlp_bias)?,
                up_proj: linear(w, &format!("{m}.up_proj"), c.mlp_bias)?,
                down_proj: linear(w, &format!("{m}.down_proj"), c.mlp_bias)?,
            };
            layers.push(Layer {
                attn,
                mlp,
                input_norm: norm(w, &format!("{p}.input_layernorm.weight"), eps)?,
                post_norm: norm(w, &format!("{p}.post_attention_layernorm.weight"), eps)?,
            });
        }
        let embed = w.get("model.embed_tokens.weight")?;
        let lm_head = if c.tie_word_embeddings {
            None
        } else {
            // Some checkpoints tie without saying so; fall back to the embedding.
            w.get_optional("lm_head.weight")?
        };
        Ok(Decoder {
            rope: Rope::new(c, w.device())?,
            norm: norm(w, "model.norm.weight", eps)?,
            embed,
            lm_head,
            layers,
            dtype: w.dtype(),
            config,
        })
    }

    pub fn device(&self) -> &candle_core::Device {
        self.embed.device()
    }

    /// Final hidden states `[batch, seq, hidden]` for token ids `[batch, seq]`.
    /// `segments` (lengths adding up to `seq`, batch 1, no cache) packs
    /// several samples in one row: positions restart at each segment and no
    /// token attends across a segment boundary.
    pub fn hidden(
        &self,
        ids: &Tensor,
        cache: Option<&mut Cache>,
        segments: Option<&[usize]>,
        mode: Mode,
    ) -> Result<Tensor> {
        let (_, seq) = ids.dims2()?;
        let offset = cache.as_ref().map_or(0, |c| c.len());
        let embedding = crate::profile::scope(crate::profile::Label::Embedding);
        let mut x =
            candle_nn::Embedding::new(self.embed.clone(), self.config.hidden_size).forward(ids)?;
        drop(embedding);
        let positions: Vec<u32> = match segments {
            Some(lengths) => lengths.iter().flat_map(|&n| 0..n as u32).collect(),
            None => (offset as u32..(offset + seq) as u32).collect(),
        };
        let (cos, sin) = self.rope.tables_at(&positions, self.dtype)?;
        let visibility = Visibility::new(offset, segments);
        let mut cache = cache;
        for (i, layer) in self.layers.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| (c, i));
            let residual = x.clone();
            let h = layer.input_norm.forward(&x, mode.train)?;
            let h = layer
                .attn
                .forward(&h, &cos, &sin, &visibility, slot, mode)?;
            x = (residual + h)?;
            let residual = x.clone();
            let h = layer.post_norm.forward(&x, mode.train)?;
            let h = layer.mlp.forward(&h, mode)?;
            x = (residual + h)?;
        }
        self.norm.forward(&x, mode.train)
    }

    /// The output projection `[vocab, hidden]` (the embedding when tied).
    pub fn output_weight(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed)
    }

    /// Logits `[..., vocab]` (f32) of hidden states `[..., hidden]`.
    pub fn logits(&self, hidden: &Tensor, train: bool) -> Result<Tensor> {
        let head = self.lm_head.as_ref().unwrap_or(&self.embed);
        super::lora::frozen_matmul(hidden, head, train)?.to_dtype(DType::F32)
    }

    /// Every projection of every layer: (module path, name, layer).
    pub fn projections(&self) -> impl Iterator<Item = (String, &'static str, &Linear)> {
        self.layers.iter().enumerate().flat_map(|(i, layer)| {
            PROJECTIONS
                .iter()
                .map(move |p| (p.path(i), p.name, (p.get)(layer)))
        })
    }

    /// Calls `f` on every projection with mutable access.
    pub fn for_each_projection_mut(
        &mut self,
        mut f: impl FnMut(String, &'static str, &mut Linear),
    ) {
        for (i, layer) in self.layers.iter_mut().enumerate() {
            for p in &PROJECTIONS {
                f(p.path(i), p.name, (p.get_mut)(layer));
            }
        }
    }

    pub fn vocab_size(&self) -> usize {
        self.embed.dims()[0]
    }
}

impl Attention {
    fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        visibility: &Visibility,
        cache: Option<(&mut Cache, usize)>,
        mode: Mode,
    ) -> Result<Tensor> {
        let _label = crate::profile::scope(crate::profile::Label::Attention);
        let (b, t, _) = x.dims3()?;
        let (h, kvh, d) = (self.heads, self.kv_heads, self.head_dim);
        let split = |y: Tensor, n: usize, norm: &Option<RmsNorm>| -> Result<Tensor> {
            let y = y.reshape((b, t, n, d))?;
            let y = match norm {
                Some(norm) => norm.forward(&y, mode.train)?,
                None => y,
            };
            y.transpose(1, 2)?.contiguous()
        };
        let q = split(self.q_proj.forward(x, mode)?, h, &self.q_norm)?;
        let k = split(self.k_proj.forward(x, mode)?, kvh, &self.k_norm)?;
        let v = split(self.v_proj.forward(x, mode)?, kvh, &None)?;
        let (q, k) = if mode.train {
            (
                candle_nn::rotary_emb::rope_slow(&q, cos, sin)?,
                candle_nn::rotary_emb::rope_slow(&k, cos, sin)?,
            )
        } else {
            (
                candle_nn::rotary_emb::rope(&q, cos, sin)?,
                candle_nn::rotary_emb::rope(&k, cos, sin)?,
            )
        };
        let (k, v) = match cache {
            Some((cache, layer)) => cache.append(layer, &k, &v)?,
            None => (k, v),
        };
        let out = attend(&q, &k, &v, visibility, mode.train)?;
        let out = out.transpose(1, 2)?.reshape((b, t, h * d))?;
        self.o_proj.forward(&out, mode)
    }
}

impl Mlp {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let _label = crate::profile::scope(crate::profile::Label::Mlp);
        let gate = self.gate_proj.forward(x, mode)?;
        let up = self.up_proj.forward(x, mode)?;
        let act = (candle_nn::ops::silu(&gate)? * up)?;
        self.down_proj.forward(&act, mode)
    }
}
