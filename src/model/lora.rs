//! Linear layers with an optional LoRA adapter:
//! `y = W x + b + scale * B (A dropout(x))`, with `scale = alpha / r`
//! (`alpha / sqrt(r)` for rsLoRA).

use super::base_weight::FrozenWeight;
use super::decoder::Mode;
use super::gemv;
use super::lora_op::Dropout;
use crate::data::rng::SplitMix64;
use candle_core::{DType, Device, Result, Tensor, Var};

/// The seven projections of a Llama-family layer, in PEFT's names.
pub const ALL_TARGETS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// What to adapt and how.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSpec {
    pub r: usize,
    pub alpha: f64,
    pub dropout: f64,
    pub targets: Vec<String>,
    pub use_rslora: bool,
}

impl LoraSpec {
    /// Rank `r` on all seven projections, no dropout, plain scaling.
    pub fn all_linear(r: usize, alpha: f64) -> Self {
        LoraSpec {
            r,
            alpha,
            dropout: 0.0,
            targets: ALL_TARGETS.iter().map(|s| s.to_string()).collect(),
            use_rslora: false,
        }
    }

    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.r as f64).sqrt()
        } else {
            self.alpha / self.r as f64
        }
    }

    /// Target names with `all-linear` expanded; unknown names are an error.
    pub fn resolve_targets(names: &[String]) -> std::result::Result<Vec<String>, String> {
        let mut out = Vec::new();
        for name in names {
            if name == "all-linear" || name == "all_linear" {
                out.extend(ALL_TARGETS.iter().map(|s| s.to_string()));
            } else if ALL_TARGETS.contains(&name.as_str()) {
                out.push(name.clone());
            } else {
                return Err(format!(
                    "unknown LoRA target `{name}`; expected {} or all-linear",
                    ALL_TARGETS.join(", ")
                ));
            }
        }
        out.sort_by_key(|n| ALL_TARGETS.iter().position(|t| t == n));
        out.dedup();
        Ok(out)
    }
}

/// The trainable pair of one adapted layer. A is `[r, in]`, B is `[out, r]`.
#[derive(Clone)]
pub struct LoraPair {
    pub a: Var,
    pub b: Var,
    pub scale: f64,
    pub dropout: f32,
    /// Distinguishes this layer's dropout masks from other layers'.
    pub id: u64,
}

impl LoraPair {
    /// The dropout on this adapter's input in a training pass: a seed per
    /// step and projection.
    fn dropout(&self, mode: Mode) -> Option<Dropout> {
        (mode.train && self.dropout > 0.0).then(|| Dropout {
            p: self.dropout,
            seed: mode.dropout_seed ^ self.id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        })
    }

    /// PEFT's initialisation: A Kaiming-uniform (a = sqrt(5)), B zeros.
    /// Seeded, so a run's starting adapter is reproducible.
    pub fn init(
        in_dim: usize,
        out_dim: usize,
        spec: &LoraSpec,
        rng: &mut SplitMix64,
        device: &Device,
    ) -> Result<Self> {
        // kaiming_uniform_(a=sqrt(5)) on [r, in] gives bound = 1 / sqrt(in).
        let bound = 1.0 / (in_dim as f64).sqrt();
        let values: Vec<f32> = (0..spec.r * in_dim)
            .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
            .collect();
        let a = Tensor::from_vec(values, (spec.r, in_dim), device)?;
        let b = Tensor::zeros((out_dim, spec.r), DType::F32, device)?;
        Self::from_tensors(&a, &b, spec)
    }

    pub fn from_tensors(a: &Tensor, b: &Tensor, spec: &LoraSpec) -> Result<Self> {
        Ok(LoraPair {
            a: Var::from_tensor(&a.to_dtype(DType::F32)?)?,
            b: Var::from_tensor(&b.to_dtype(DType::F32)?)?,
            scale: spec.scale(),
            dropout: spec.dropout as f32,
            id: 0,
        })
    }
}

/// A frozen linear layer, possibly with an adapter.
#[derive(Clone)]
pub struct Linear {
    /// `[out, in]`, as stored in the checkpoint (or kept quantized).
    pub weight: FrozenWeight,
    pub bias: Option<Tensor>,
    pub lora: Option<LoraPair>,
}

impl Linear {
    pub fn new(weight: impl Into<FrozenWeight>, bias: Option<Tensor>) -> Self {
        Linear {
            weight: weight.into(),
            bias,
            lora: None,
        }
    }

    pub fn in_dim(&self) -> usize {
        self.weight.dims2().1
    }

    pub fn out_dim(&self) -> usize {
        self.weight.dims2().0
    }

    /// Whether a pass that is not training multiplies `x` row by row on
    /// plain vectors ([`Linear::forward_rows`]).
    fn takes_rows(&self, x: &Tensor) -> bool {
        self.takes(x.elem_count() / self.in_dim().max(1), x.dtype())
    }

    /// [`Linear::takes_rows`] for `rows` input rows of `dtype`.
    pub fn takes(&self, rows: usize, dtype: DType) -> bool {
        match &self.weight {
            FrozenWeight::Dense(w) => gemv::applies_to(rows, dtype, w),
            FrozenWeight::Quantized(q) => q.takes_rows(rows),
        }
    }

    /// `x` is `[batch, seq, in]`.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        if let Some(lora) = self.lora.as_ref().filter(|_| mode.train && mode.adapter) {
            let _label = crate::profile::scope(crate::profile::Label::Lora);
            let dropout = lora.dropout(mode);
            return super::lora_op::lora_linear(
                x,
                &self.weight,
                self.bias.as_ref(),
                lora.a.as_tensor(),
                lora.b.as_tensor(),
                lora.scale,
                dropout,
            );
        }
        if !mode.train && self.takes_rows(x) {
            return self.forward_rows(x, mode);
        }
        let frozen = crate::profile::scope(crate::profile::Label::Frozen);
        let mut y = match (&self.weight, mode.train) {
            (weight, true) => super::frozen::frozen_matmul_t(x, weight)?,
            (FrozenWeight::Dense(w), false) => frozen_matmul(x, w, false)?,
            (FrozenWeight::Quantized(q), false) => q.matmul_t(x)?,
        };
        if let Some(bias) = &self.bias {
            y = y.broadcast_add(bias)?;
        }
        drop(frozen);
        let _label = crate::profile::scope(crate::profile::Label::Lora);
        match &self.lora {
            Some(lora) if mode.adapter && mode.base_rows > 0 => {
                // Only the rows after the base's get the delta.
                let (out_dim, in_dim) = (self.out_dim(), self.in_dim());
                let rows = x.elem_count() / in_dim;
                let shape = y.dims().to_vec();
                let y = y.reshape((rows, out_dim))?;
                let adapted = rows.saturating_sub(mode.base_rows);
                if adapted == 0 {
                    return y.reshape(shape);
                }
                let x = x
                    .reshape((rows, in_dim))?
                    .narrow(0, mode.base_rows, adapted)?;
                let delta = lora.delta(&x, mode)?.to_dtype(y.dtype())?;
                let tail = (y.narrow(0, mode.base_rows, adapted)? + delta)?;
                Tensor::cat(&[&y.narrow(0, 0, mode.base_rows)?, &tail], 0)?.reshape(shape)
            }
            Some(lora) if mode.adapter => {
                let delta = lora.delta(x, mode)?.to_dtype(y.dtype())?;
                y + delta
            }
            _ => Ok(y),
        }
    }

    /// [`Linear::forward`] of a decoding step (a few rows, CPU weights):
    /// product, bias and the delta of the rows from `mode.base_rows` on,
    /// summed in f32 on plain vectors and rounded once. Each row's sums do
    /// not depend on the rows beside it, and none of the dozen small tensor
    /// ops of the general form (narrow, cast, two products, scale, add, cat)
    /// is made per projection.
    fn forward_rows(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let y = self.rows(&gemv::rows_of(x)?, mode)?;
        self.rows_tensor(y, x)
    }

    /// [`Linear::forward_rows`] on `inputs`, rows of `in` values in f32
    /// (where [`Linear::takes`] holds): the output rows in f32.
    pub fn rows(&self, inputs: &[f32], mode: Mode) -> Result<Vec<f32>> {
        let addend = self.addend(mode);
        let _frozen = crate::profile::scope(crate::profile::Label::Frozen);
        match &self.weight {
            FrozenWeight::Dense(w) => gemv::products_with(inputs, w, &addend),
            FrozenWeight::Quantized(q) => {
                let in_dim = self.in_dim();
                let rows =
                    Tensor::from_slice(inputs, (inputs.len() / in_dim, in_dim), &Device::Cpu)?;
                let mut y = gemv::rows_of(&q.product_t(&rows)?)?;
                gemv::add_to_products(&mut y, inputs, in_dim, self.out_dim(), &addend)?;
                Ok(y)
            }
        }
    }

    /// [`Linear::forward`] of several projections of the same input (a
    /// layer's q, k and v, or gate and up) in a decoding step: their
    /// products as one parallel section. `None` unless they all take rows
    /// on dense weights of one dtype.
    pub fn forward_together<const N: usize>(
        linears: [&Linear; N],
        x: &Tensor,
        mode: Mode,
    ) -> Result<Option<[Tensor; N]>> {
        let rows = x.elem_count() / linears[0].in_dim().max(1);
        if mode.train || !Self::take_together(&linears, rows, x.dtype()) {
            return Ok(None);
        }
        let products = Self::rows_together(&linears, &gemv::rows_of(x)?, mode)?;
        let outputs = linears
            .iter()
            .zip(products)
            .map(|(linear, y)| linear.rows_tensor(y, x))
            .collect::<Result<Vec<_>>>()?;
        match <[Tensor; N]>::try_from(outputs) {
            Ok(outputs) => Ok(Some(outputs)),
            Err(_) => candle_core::bail!("GEMV: one product per projection expected"),
        }
    }

    /// Whether [`Linear::rows_together`] applies to `rows` input rows of
    /// `dtype`: dense weights of one dtype that all take rows.
    pub fn take_together(linears: &[&Linear], rows: usize, dtype: DType) -> bool {
        let dense = |l: &&Linear| match &l.weight {
            FrozenWeight::Dense(w) if l.takes(rows, dtype) => Some(w.dtype()),
            _ => None,
        };
        let dtypes: Option<Vec<DType>> = linears.iter().map(dense).collect();
        dtypes.is_some_and(|d| d.windows(2).all(|p| p[0] == p[1]))
    }

    /// [`Linear::rows`] of several projections of the same `inputs`, in one
    /// parallel section; [`Linear::take_together`] must hold.
    pub fn rows_together(linears: &[&Linear], inputs: &[f32], mode: Mode) -> Result<Vec<Vec<f32>>> {
        let weights = linears
            .iter()
            .map(|linear| match &linear.weight {
                FrozenWeight::Dense(w) => Ok(w),
                FrozenWeight::Quantized(_) => candle_core::bail!("GEMV of a quantized weight"),
            })
            .collect::<Result<Vec<_>>>()?;
        let addends: Vec<_> = linears.iter().map(|linear| linear.addend(mode)).collect();
        let _frozen = crate::profile::scope(crate::profile::Label::Frozen);
        gemv::products_together(inputs, &weights, &addends)
    }

    /// What a decoding step adds to the frozen product of `inputs`: the
    /// bias, and the adapter's delta on the rows from `mode.base_rows` on
    /// (made in the frozen product's tasks).
    fn addend(&self, mode: Mode) -> gemv::Addend<'_> {
        let low_rank = match (&self.lora, mode.adapter) {
            (Some(lora), true) => Some(gemv::LowRank {
                first: mode.base_rows,
                a: lora.a.as_tensor(),
                b: lora.b.as_tensor(),
                scale: lora.scale as f32,
            }),
            _ => None,
        };
        gemv::Addend {
            bias: self.bias.as_ref(),
            low_rank,
        }
    }

    /// The rows `y` (f32) as a tensor shaped and typed like the output for
    /// `x`, rounded once.
    pub fn rows_tensor(&self, y: Vec<f32>, x: &Tensor) -> Result<Tensor> {
        let shape = gemv::with_last(x, self.out_dim());
        Tensor::from_vec(y, shape, x.device())?.to_dtype(x.dtype())
    }
}

impl LoraPair {
    /// `scale * B (A dropout(x))` in f32.
    fn delta(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let mut input = x.to_dtype(DType::F32)?;
        if let Some(dropout) = self.dropout(mode) {
            input = input.broadcast_mul(&dropout.mask(input.dims(), x.device())?)?;
        }
        // Outside training nothing needs gradients: detached factors keep
        // candle from recording a graph, which would hold every activation
        // of the pass (a whole eval at 6k tokens: 15+ GB).
        let (a, b) = if mode.train {
            (self.a.as_tensor().clone(), self.b.as_tensor().clone())
        } else {
            (self.a.as_tensor().detach(), self.b.as_tensor().detach())
        };
        let down = input.broadcast_matmul(&a.t()?)?;
        let up = down.broadcast_matmul(&b.t()?)?;
        up * self.scale
    }
}

/// `x @ w.T` for a frozen dense weight: in training, a product whose
/// backward skips the weight; otherwise the GEMV for decoding on CPU, bf16
/// widened to f32 for longer CPU inputs (candle has no fast CPU bf16 matmul),
/// candle's matmul otherwise.
pub fn frozen_matmul(x: &Tensor, w: &Tensor, train: bool) -> Result<Tensor> {
    if train {
        return super::frozen::frozen_matmul_t(x, &FrozenWeight::Dense(w.clone()));
    }
    if gemv::applies(x, w) {
        return gemv::matmul_t(x, w);
    }
    if w.dtype() == DType::BF16 && matches!(w.device(), Device::Cpu) {
        let y = x
            .to_dtype(DType::F32)?
            .broadcast_matmul(&w.to_dtype(DType::F32)?.t()?)?;
        return y.to_dtype(x.dtype());
    }
    x.broadcast_matmul(&w.t()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::decoder::Mode;

    fn adapted() -> Linear {
        let dev = Device::Cpu;
        let mut linear = Linear::new(Tensor::ones((4, 3), DType::F32, &dev).unwrap(), None);
        let spec = LoraSpec::all_linear(2, 4.0);
        let a = Tensor::ones((2, 3), DType::F32, &dev).unwrap();
        let b = Tensor::ones((4, 2), DType::F32, &dev).unwrap();
        linear.lora = Some(LoraPair::from_tensors(&a, &b, &spec).unwrap());
        linear
    }

    #[test]
    fn inference_through_a_trainable_adapter_records_no_graph() {
        let linear = adapted();
        let x = Tensor::ones((1, 2, 3), DType::F32, &Device::Cpu).unwrap();
        let y = linear.forward(&x, Mode::ADAPTED).unwrap();
        // 3 from the weight + 2 * 6 from the adapter (A x = 3, B A x = 6, scale 2).
        assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0], 15.0);
        assert!(!y.track_op(), "an eval pass must not keep a graph alive");
        let trained = linear.forward(&x, Mode::training(0)).unwrap();
        assert!(trained.track_op());
    }
}
