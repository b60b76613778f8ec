//! Rotary position embeddings, with Llama 3's frequency scaling.

use super::config::ModelConfig;
use candle_core::{DType, Device, Result, Tensor};

pub struct Rope {
    /// `[head_dim / 2]` inverse frequencies (f32).
    inv_freq: Tensor,
}

impl Rope {
    pub fn new(c: &ModelConfig, device: &Device) -> Result<Self> {
        let d = c.head_dim;
        let mut inv: Vec<f32> = (0..d / 2)
            .map(|i| 1.0 / (c.rope_theta as f32).powf((2 * i) as f32 / d as f32))
            .collect();
        if let Some(s) = &c.rope_scaling {
            // Long wavelengths are slowed by `factor`, short ones kept, and
            // those in between blended (as transformers' llama3 rope does).
            let low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
            let high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
            for f in &mut inv {
                let freq = *f as f64;
                let wavelen = 2.0 * std::f64::consts::PI / freq;
                let scaled = if wavelen > low_wavelen {
                    freq / s.factor
                } else if wavelen < high_wavelen {
                    freq
                } else {
                    let smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor)
                        / (s.high_freq_factor - s.low_freq_factor);
                    (1.0 - smooth) * freq / s.factor + smooth * freq
                };
                *f = scaled as f32;
            }
        }
        if let Some(factors) = &c.rope_freq_factors {
            for (f, factor) in inv.iter_mut().zip(factors.iter()) {
                *f /= factor;
            }
        }
        Ok(Rope {
            inv_freq: Tensor::new(inv, device)?,
        })
    }

    /// cos and sin `[seq, head_dim / 2]` for the given positions.
    pub fn tables_at(&self, positions: &[u32], dtype: DType) -> Result<(Tensor, Tensor)> {
        let positions: Vec<f32> = positions.iter().map(|&p| p as f32).collect();
        let positions = Tensor::new(positions, self.inv_freq.device())?.unsqueeze(1)?;
        let freqs = positions.broadcast_mul(&self.inv_freq.unsqueeze(0)?)?;
        Ok((freqs.cos()?.to_dtype(dtype)?, freqs.sin()?.to_dtype(dtype)?))
    }
}
