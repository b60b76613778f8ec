//! One decoder for the Llama family (Llama 2/3, Mistral, Qwen2/2.5, Qwen3).
//!
//! Inference uses candle's fused kernels; training (`Mode::train`) uses
//! differentiable forms, because the fused softmax, RMSNorm and RoPE drop
//! gradients silently.

use super::attend::{Visibility, attend};
use super::base_weight::FrozenWeight;
use super::checkpoint::{RecomputedGrads, checkpointed};
use super::config::ModelConfig;
use super::flash::Products;
pub use super::kv_cache::Cache;
use super::lora::Linear;
use super::rope::Rope;
use super::weights::TensorSource;
use candle_core::{DType, Module, Result, Tensor, Var};
use std::sync::Arc;

mod f32_activations;
mod plain_layers;
mod prompt_heads;
mod rows;

pub(crate) use rows::swiglu_f32;

/// How a forward pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// Apply the LoRA adapter (when one is attached).
    pub adapter: bool,
    /// Differentiable ops and LoRA dropout.
    pub train: bool,
    /// Seeds this pass's dropout masks, so a resumed run draws the same ones.
    pub dropout_seed: u64,
    /// Rows (of the flattened batch and positions) before this one skip the
    /// adapter: side-by-side decoding puts the base's token first and the
    /// adapter's after it, so both read the shared weights once.
    pub base_rows: usize,
}

impl Mode {
    pub const BASE: Mode = Mode {
        adapter: false,
        train: false,
        dropout_seed: 0,
        base_rows: 0,
    };
    pub const ADAPTED: Mode = Mode {
        adapter: true,
        train: false,
        dropout_seed: 0,
        base_rows: 0,
    };

    pub fn training(dropout_seed: u64) -> Mode {
        Mode {
            adapter: true,
            train: true,
            dropout_seed,
            base_rows: 0,
        }
    }
}

#[derive(Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
    /// The weight's values in f32, for the plain decoding step.
    values: std::sync::OnceLock<Vec<f32>>,
}

impl RmsNorm {
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let _label = crate::profile::scope(crate::profile::Label::Norm);
        if !train {
            return candle_nn::ops::rms_norm(&x.contiguous()?, &self.weight, self.eps as f32);
        }
        super::norm_op::rms_norm_train(x, &self.weight, self.eps)
    }

    /// The weight's values in f32, read once.
    fn values(&self) -> Result<&[f32]> {
        if let Some(values) = self.values.get() {
            return Ok(values);
        }
        let values = super::gemv::rows_of(&self.weight)?;
        Ok(self.values.get_or_init(|| values))
    }
}

#[derive(Clone)]
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

#[derive(Clone)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

/// A decoder layer. Cloning is cheap (its tensors are shared), so a
/// checkpointed layer's backward can hold its own copy.
#[derive(Clone)]
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
    /// The weights' working dtype.
    pub dtype: DType,
    /// The activations' dtype: the weights' unless training on a CPU has
    /// made it f32 (`f32_activations`).
    activations: DType,
}

fn norm(w: &dyn TensorSource, name: &str, eps: f64) -> Result<RmsNorm> {
    Ok(RmsNorm {
        weight: w.get(name)?,
        eps,
        values: std::sync::OnceLock::new(),
    })
}

fn linear(w: &dyn TensorSource, prefix: &str, bias: bool) -> Result<Linear> {
    let weight = w.get_frozen(&format!("{prefix}.weight"))?;
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
        let decoder = Decoder {
            rope: Rope::new(c, w.device())?,
            norm: norm(w, "model.norm.weight", eps)?,
            embed,
            lm_head,
            layers,
            dtype: w.dtype(),
            activations: w.dtype(),
            config,
        };
        if super::huge_pages::wanted() {
            decoder.hold_weights_in_huge_pages();
        }
        Ok(decoder)
    }

    /// The dense frozen weights moved to huge pages where the kernel
    /// allows (see `huge_pages`).
    fn hold_weights_in_huge_pages(&self) {
        let projections = self
            .projections()
            .filter_map(|(_, _, linear)| match &linear.weight {
                FrozenWeight::Dense(weight) => Some(weight),
                FrozenWeight::Quantized(_) => None,
            });
        super::huge_pages::hold(
            std::iter::once(&self.embed)
                .chain(&self.lm_head)
                .chain(projections),
        );
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
        self.run(ids, cache, segments, mode, None)
    }

    /// The training forward of [`Decoder::hidden`] with gradient
    /// checkpointing: each layer keeps only its input for backward and
    /// recomputes itself there, handing its LoRA gradients to `grads`
    /// (drain them into the backward's store before reading it).
    pub fn hidden_checkpointed(
        &self,
        ids: &Tensor,
        segments: Option<&[usize]>,
        mode: Mode,
        grads: &RecomputedGrads,
    ) -> Result<Tensor> {
        if !mode.train {
            candle_core::bail!("gradient checkpointing applies to training passes only");
        }
        self.run(ids, None, segments, mode, Some(grads))
    }

    /// The forward pass; a generation's (with a cache) on a rayon thread
    /// ([`crate::pool`]). Passes over whole samples run where they are
    /// called: a training step and a sample's loss move onto the pool as a
    /// whole (`trainer::optimizer_step`, `loss::sample_loss`), backward pass
    /// included.
    fn run(
        &self,
        ids: &Tensor,
        cache: Option<&mut Cache>,
        segments: Option<&[usize]>,
        mode: Mode,
        checkpoint: Option<&RecomputedGrads>,
    ) -> Result<Tensor> {
        if cache.is_none() || mode.train {
            return self.run_here(ids, cache, segments, mode, checkpoint);
        }
        let pass = || self.run_here(ids, cache, segments, mode, checkpoint);
        if ids.elem_count() <= super::gemv::MAX_ROWS {
            return super::gemv::prefetch::timed_step(|| crate::pool::step_on_pool(pass));
        }
        crate::pool::on_pool(pass)
    }

    fn run_here(
        &self,
        ids: &Tensor,
        mut cache: Option<&mut Cache>,
        segments: Option<&[usize]>,
        mode: Mode,
        checkpoint: Option<&RecomputedGrads>,
    ) -> Result<Tensor> {
        let (_, seq) = ids.dims2()?;
        let offset = cache.as_ref().map_or(0, |c| c.len());
        let mut x = self.embedded(ids)?;
        let token_positions: Vec<u32> = match segments {
            Some(lengths) => lengths.iter().flat_map(|&n| 0..n as u32).collect(),
            None => (offset as u32..(offset + seq) as u32).collect(),
        };
        let (cos, sin) = self.rope.tables_at(&token_positions, self.activations)?;
        let positions = Arc::new(Positions {
            cos,
            sin,
            visibility: Visibility::new(offset, segments),
            training_products: super::flash::tile_products(
                self.dtype == DType::BF16,
                self.config.head_dim,
            ),
        });
        if checkpoint.is_some() {
            // The embeddings are not tracked (frozen), so without this the
            // first layer's op would not be in the backward graph at all.
            x = Var::from_tensor(&x)?.into_inner();
        }
        for (i, layer) in self.layers.iter().enumerate() {
            x = match checkpoint {
                Some(grads) => checkpointed(layer, &x, &positions, mode, grads)?,
                None => {
                    let slot = cache.as_deref_mut().map(|c| (c, i));
                    layer.forward(&x, &positions, slot, mode)?
                }
            };
        }
        self.norm.forward(&x, mode.train)
    }

    /// Final hidden states `[1, rows, hidden]` of one decoding step of
    /// several independent sequences: row `i` appends `tokens[i]` to the
    /// sequence cached in `caches[i]`. The rows go through the projections
    /// as one matrix (each weight is read once for all of them) and attend
    /// apart, each over its own cache at its own position, so sequences of
    /// different lengths need no padding and a finished one simply leaves.
    pub fn step_rows(
        &self,
        tokens: &[u32],
        caches: &mut [&mut Cache],
        mode: Mode,
    ) -> Result<Tensor> {
        let step = || self.step_rows_here(tokens, caches, mode);
        super::gemv::prefetch::timed_step(|| crate::pool::step_on_pool(step))
    }

    fn step_rows_here(
        &self,
        tokens: &[u32],
        caches: &mut [&mut Cache],
        mode: Mode,
    ) -> Result<Tensor> {
        if tokens.len() != caches.len() {
            candle_core::bail!("{} tokens for {} caches", tokens.len(), caches.len());
        }
        let ids = Tensor::new(tokens, self.device())?.unsqueeze(0)?;
        let x = self.embedded(&ids)?;
        let offsets: Vec<u32> = caches.iter().map(|c| c.len() as u32).collect();
        // One table row per sequence: `[rows, 1, head_dim / 2]`, each rotating
        // its own row of the batch.
        let (cos, sin) = self.rope.tables_at(&offsets, self.activations)?;
        let per_row = |t: Tensor| t.unsqueeze(1);
        let rows = Rows {
            tables: rows::Tables::of(&cos, &sin)?,
            cos: per_row(cos)?,
            sin: per_row(sin)?,
            visibility: offsets
                .iter()
                .map(|&offset| Visibility::new(offset as usize, None))
                .collect(),
        };
        if let Some(x) = plain_layers::through(&self.layers, &x, &rows, caches, mode)? {
            return self.norm.forward(&x, mode.train);
        }
        let mut x = x;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward_with(&x, mode, |attn, h| {
                attn.forward_rows(h, &rows, caches, i, mode)
            })?;
        }
        self.norm.forward(&x, mode.train)
    }

    /// The embeddings of token ids `[batch, seq]`, in the activations' dtype.
    fn embedded(&self, ids: &Tensor) -> Result<Tensor> {
        let _label = crate::profile::scope(crate::profile::Label::Embedding);
        candle_nn::Embedding::new(self.embed.clone(), self.config.hidden_size)
            .forward(ids)?
            .to_dtype(self.activations)
    }

    /// The output projection `[vocab, hidden]` (the embedding when tied).
    pub fn output_weight(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed)
    }

    /// Logits `[..., vocab]` (f32) of hidden states `[..., hidden]`.
    pub fn logits(&self, hidden: &Tensor, train: bool) -> Result<Tensor> {
        let logits = || {
            let _label = crate::profile::scope(crate::profile::Label::Logits);
            let head = self.lm_head.as_ref().unwrap_or(&self.embed);
            super::lora::frozen_matmul(hidden, head, train)?.to_dtype(DType::F32)
        };
        // A decoding step's few rows on the pool, as in `run`.
        let rows = hidden.elem_count() / self.config.hidden_size.max(1);
        if train || rows > super::gemv::MAX_ROWS {
            return logits();
        }
        crate::pool::step_on_pool(logits)
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

/// Where a pass's tokens sit: their rotary tables and which keys each
/// query may see.
pub struct Positions {
    cos: Tensor,
    sin: Tensor,
    visibility: Visibility,
    /// How training attention takes its tile products (by the base's dtype).
    training_products: Products,
}

/// Where the rows of [`Decoder::step_rows`] stand: rotation tables
/// `[rows, 1, head_dim / 2]` and each row's visible keys.
struct Rows {
    /// The tables' values, for the plain path ([`rows::attention`]).
    tables: Option<rows::Tables>,
    cos: Tensor,
    sin: Tensor,
    visibility: Vec<Visibility>,
}

impl Layer {
    /// `x + attn(norm(x))`, then `x + mlp(norm(x))`.
    pub fn forward(
        &self,
        x: &Tensor,
        positions: &Positions,
        cache: Option<(&mut Cache, usize)>,
        mode: Mode,
    ) -> Result<Tensor> {
        self.forward_with(x, mode, |attn, h| attn.forward(h, positions, cache, mode))
    }

    /// The layer with `attention` computing the attention output of the
    /// normed input (a whole pass, or the rows of one decoding step).
    fn forward_with(
        &self,
        x: &Tensor,
        mode: Mode,
        attention: impl FnOnce(&Attention, &Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let h = self.input_norm.forward(x, mode.train)?;
        let x = super::residual::add(x, &attention(&self.attn, &h)?, mode.train)?;
        let h = self.post_norm.forward(&x, mode.train)?;
        super::residual::add(&x, &self.mlp.forward(&h, mode)?, mode.train)
    }
}

impl Attention {
    fn forward(
        &self,
        x: &Tensor,
        positions: &Positions,
        cache: Option<(&mut Cache, usize)>,
        mode: Mode,
    ) -> Result<Tensor> {
        let _label = crate::profile::scope(crate::profile::Label::Attention);
        let (b, t, _) = x.dims3()?;
        let [q, k, v] = self.project(x, mode)?;
        let [q, k, v] = self.heads([&q, &k, &v], &positions.cos, &positions.sin, mode)?;
        let (k, v) = match cache {
            Some((cache, layer)) => cache.append(layer, &k, &v)?,
            None => (k, v),
        };
        let training = mode.train.then_some(positions.training_products);
        let out = attend(&q, &k, &v, &positions.visibility, training)?;
        let out = out
            .transpose(1, 2)?
            .reshape((b, t, self.heads * self.head_dim))?;
        self.o_proj.forward(&out, mode)
    }

    /// Queries, keys and values `[b, t, _]`, before the heads are split.
    fn project(&self, x: &Tensor, mode: Mode) -> Result<[Tensor; 3]> {
        let together = [&self.q_proj, &self.k_proj, &self.v_proj];
        if let Some(qkv) = Linear::forward_together(together, x, mode)? {
            return Ok(qkv);
        }
        Ok([
            self.q_proj.forward(x, mode)?,
            self.k_proj.forward(x, mode)?,
            self.v_proj.forward(x, mode)?,
        ])
    }

    /// [`Attention::forward`] for the rows of [`Decoder::step_rows`]:
    /// `x` is `[1, rows, hidden]`. The rows become a batch of one-token
    /// sequences, so splitting heads and rotating run once for all of them;
    /// only the cache and the attention itself go row by row, each over its
    /// own cache.
    fn forward_rows(
        &self,
        x: &Tensor,
        rows: &Rows,
        caches: &mut [&mut Cache],
        layer: usize,
        mode: Mode,
    ) -> Result<Tensor> {
        let _label = crate::profile::scope(crate::profile::Label::Attention);
        if let Some(out) = rows::attention(self, x, rows, caches, layer, mode)? {
            return Ok(out);
        }
        let n = rows.visibility.len();
        let as_batch = |y: Tensor| -> Result<Tensor> {
            let width = y.dim(2)?;
            y.reshape((n, 1, width))
        };
        let [q, k, v] = self.project(x, mode)?.map(as_batch);
        let [q, k, v] = self.heads([&q?, &k?, &v?], &rows.cos, &rows.sin, mode)?;
        let mut outputs = Vec::with_capacity(n);
        for (i, (visibility, cache)) in rows.visibility.iter().zip(caches.iter_mut()).enumerate() {
            let (keys, values) = cache.append(layer, &k.narrow(0, i, 1)?, &v.narrow(0, i, 1)?)?;
            outputs.push(attend(
                &q.narrow(0, i, 1)?,
                &keys,
                &values,
                visibility,
                None,
            )?);
        }
        let out = Tensor::cat(&outputs, 0)?.transpose(1, 2)?.reshape((
            1,
            n,
            self.heads * self.head_dim,
        ))?;
        self.o_proj.forward(&out, mode)
    }

    /// Projected queries, keys and values `[b, t, _]` as heads `[b, heads,
    /// t, head_dim]`: split (and normed, for Qwen3) and rotated by the
    /// tables `cos`, `sin` (`[t, head_dim / 2]`, or `[b, t, head_dim / 2]`
    /// with a table per batch row).
    fn heads(
        &self,
        [q, k, v]: [&Tensor; 3],
        cos: &Tensor,
        sin: &Tensor,
        mode: Mode,
    ) -> Result<[Tensor; 3]> {
        let (b, t, _) = q.dims3()?;
        let (h, kvh, d) = (self.heads, self.kv_heads, self.head_dim);
        if !mode.train && self.q_norm.is_none() && self.k_norm.is_none() {
            let tables = Some((cos, sin));
            if let (Some(q), Some(k), Some(v)) = (
                prompt_heads::split(q, (h, d), tables)?,
                prompt_heads::split(k, (kvh, d), tables)?,
                prompt_heads::split(v, (kvh, d), None)?,
            ) {
                return Ok([q, k, v]);
            }
        }
        let split = |y: &Tensor, n: usize, norm: &Option<RmsNorm>| -> Result<Tensor> {
            let y = y.reshape((b, t, n, d))?;
            let y = match norm {
                Some(norm) => norm.forward(&y, mode.train)?,
                None => y,
            };
            y.transpose(1, 2)?.contiguous()
        };
        let q = split(q, h, &self.q_norm)?;
        let k = split(k, kvh, &self.k_norm)?;
        let v = split(v, kvh, &None)?;
        let rotate = if mode.train {
            super::rope_op::rope_train
        } else {
            candle_nn::rotary_emb::rope
        };
        Ok([rotate(&q, cos, sin)?, rotate(&k, cos, sin)?, v])
    }
}

impl Mlp {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let _label = crate::profile::scope(crate::profile::Label::Mlp);
        if let Some(out) = rows::mlp(self, x, mode)? {
            return Ok(out);
        }
        let together = [&self.gate_proj, &self.up_proj];
        let (gate, up) = match Linear::forward_together(together, x, mode)? {
            Some([gate, up]) => (gate, up),
            None => (
                self.gate_proj.forward(x, mode)?,
                self.up_proj.forward(x, mode)?,
            ),
        };
        let act = if mode.train {
            super::swiglu_op::swiglu_train(&gate, &up)?
        } else {
            (candle_nn::ops::silu(&gate)? * up)?
        };
        self.down_proj.forward(&act, mode)
    }
}
