//! Keys and values of earlier positions, per layer, in buffers that grow by
//! doubling: appending a token writes it in place instead of copying the
//! whole cache (which made a 6k-token answer quadratic in memory traffic).

use candle_core::{Result, Tensor};

/// Positions a layer's buffer holds at first.
const INITIAL_POSITIONS: usize = 256;

struct LayerCache {
    /// `[batch, kv_heads, capacity, head_dim]`; the first `len` positions hold data.
    keys: Tensor,
    values: Tensor,
    len: usize,
}

#[derive(Default)]
pub struct Cache {
    layers: Vec<Option<LayerCache>>,
}

impl Cache {
    pub fn new(layers: usize) -> Self {
        Cache {
            layers: (0..layers).map(|_| None).collect(),
        }
    }

    /// Positions already in the cache.
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .map_or(0, |l| l.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `[b, kv, t, d]` keys and values to layer `layer`'s cache and
    /// returns views of everything cached so far.
    pub fn append(
        &mut self,
        layer: usize,
        keys: &Tensor,
        values: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let slot = &mut self.layers[layer];
        let new = keys.dim(2)?;
        let len = slot.as_ref().map_or(0, |c| c.len);
        let capacity = slot.as_ref().map_or(0, |c| c.keys.dim(2).unwrap_or(0));
        if len + new > capacity {
            let grown = (len + new).max(capacity * 2).max(INITIAL_POSITIONS);
            *slot = Some(grow(slot.take(), keys, values, grown)?);
        }
        let cache = slot.as_mut().expect("allocated above");
        cache.keys.slice_set(&keys.contiguous()?, 2, len)?;
        cache.values.slice_set(&values.contiguous()?, 2, len)?;
        cache.len = len + new;
        Ok((
            cache.keys.narrow(2, 0, cache.len)?,
            cache.values.narrow(2, 0, cache.len)?,
        ))
    }
}

/// A buffer of `capacity` positions holding what `old` held.
fn grow(
    old: Option<LayerCache>,
    keys: &Tensor,
    values: &Tensor,
    capacity: usize,
) -> Result<LayerCache> {
    let buffer = |like: &Tensor| -> Result<Tensor> {
        let (b, kv, _, d) = like.dims4()?;
        Tensor::zeros((b, kv, capacity, d), like.dtype(), like.device())
    };
    let (new_keys, new_values) = (buffer(keys)?, buffer(values)?);
    let len = old.as_ref().map_or(0, |c| c.len);
    if let Some(old) = old {
        new_keys.slice_set(&old.keys.narrow(2, 0, len)?.contiguous()?, 2, 0)?;
        new_values.slice_set(&old.values.narrow(2, 0, len)?.contiguous()?, 2, 0)?;
    }
    Ok(LayerCache {
        keys: new_keys,
        values: new_values,
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn appending_past_the_capacity_keeps_every_position() {
        let mut cache = Cache::new(1);
        let mut all = Vec::new();
        // 300 positions in pieces: the buffer grows from 256 to 512 on the way.
        for (i, n) in [200usize, 1, 1, 98].into_iter().enumerate() {
            let k =
                (Tensor::ones((1, 2, n, 4), DType::F32, &Device::Cpu).unwrap() * i as f64).unwrap();
            all.push(k.clone());
            let (keys, values) = cache.append(0, &k, &k).unwrap();
            assert_eq!(keys.dims(), values.dims());
        }
        assert_eq!(cache.len(), 300);
        let (keys, _) = cache
            .append(
                0,
                &all[0].narrow(2, 0, 1).unwrap(),
                &all[0].narrow(2, 0, 1).unwrap(),
            )
            .unwrap();
        let expected = Tensor::cat(
            &[
                &Tensor::cat(&all, 2).unwrap(),
                &all[0].narrow(2, 0, 1).unwrap(),
            ],
            2,
        )
        .unwrap();
        assert_eq!(crate::model::max_abs_diff(&keys, &expected).unwrap(), 0.0);
    }
}
