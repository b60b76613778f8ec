//! The backward pass's tile products over one key/value head: in f32
//! through `gemm`, or on the CPU's bf16 pairs.

use super::{HeadInputs, product};
#[cfg(target_arch = "x86_64")]
use super::{bits_of, pair_tiles};
use crate::model::product::{plain, transposed};
use std::ops::Range;

/// A key block's tile products in the backward pass, over one key/value
/// head: in f32, or on bf16 pairs (the head's inputs rounded to pair words
/// once, each tile's probabilities and score gradients rounded as they go
/// in), with buffers kept from tile to tile.
pub(super) enum GradientProducts<'a> {
    F32 {
        inputs: &'a HeadInputs<'a>,
        d: usize,
    },
    #[cfg(target_arch = "x86_64")]
    Pairs {
        /// Queries, output gradients, keys and values as pair words.
        words: [&'a [f32]; 4],
        d: usize,
        /// A product before it is added to its gradient.
        sums: Vec<f32>,
        scratch: pair_tiles::Scratch,
    },
}

impl<'a> GradientProducts<'a> {
    pub(super) fn new(inputs: &'a HeadInputs<'a>, d: usize) -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Some(words) = inputs.words {
            return GradientProducts::Pairs {
                words,
                d,
                sums: Vec::new(),
                scratch: pair_tiles::Scratch::default(),
            };
        }
        GradientProducts::F32 { inputs, d }
    }

    /// `p = Q Kᵀ` for the query rows `span` and the keys `part`.
    pub(super) fn scores(&mut self, p: &mut [f32], span: &Range<usize>, part: &Range<usize>) {
        match self {
            GradientProducts::F32 { inputs, d } => {
                let (q, k) = (rows_of(inputs.q, span, *d), rows_of(inputs.k, part, *d));
                product(
                    p,
                    (span.len(), part.len(), *d),
                    plain(q, *d),
                    transposed(k, *d),
                    1.0,
                    false,
                )
            }
            #[cfg(target_arch = "x86_64")]
            GradientProducts::Pairs {
                words: [q, _, k, _],
                d,
                scratch,
                ..
            } => {
                let k = bits_of(rows_of(k, part, *d / 2));
                pair_tiles::times_transposed(rows_of(q, span, *d / 2), k, *d, p, scratch)
            }
        }
    }

    /// `ds = dO Vᵀ` for the query rows `span` and the keys `part`.
    pub(super) fn output_gradient_scores(
        &mut self,
        ds: &mut [f32],
        span: &Range<usize>,
        part: &Range<usize>,
    ) {
        match self {
            GradientProducts::F32 { inputs, d } => {
                let (d_out, v) = (rows_of(inputs.d_out, span, *d), rows_of(inputs.v, part, *d));
                let sizes = (span.len(), part.len(), *d);
                product(ds, sizes, plain(d_out, *d), transposed(v, *d), 1.0, false)
            }
            #[cfg(target_arch = "x86_64")]
            GradientProducts::Pairs {
                words: [_, d_out, _, v],
                d,
                scratch,
                ..
            } => {
                let v = bits_of(rows_of(v, part, *d / 2));
                pair_tiles::times_transposed(rows_of(d_out, span, *d / 2), v, *d, ds, scratch)
            }
        }
    }

    /// `dv += pᵀ dO` for the query rows `span` (`p` rows of `n` keys).
    pub(super) fn add_value_gradients(
        &mut self,
        dv: &mut [f32],
        p: &[f32],
        span: &Range<usize>,
        n: usize,
    ) {
        match self {
            GradientProducts::F32 { inputs, d } => {
                let d_out = rows_of(inputs.d_out, span, *d);
                product(
                    dv,
                    (n, *d, span.len()),
                    transposed(p, n),
                    plain(d_out, *d),
                    1.0,
                    true,
                )
            }
            #[cfg(target_arch = "x86_64")]
            GradientProducts::Pairs { .. } => self.add_turned(dv, p, n, (1, span), 1.0),
        }
    }

    /// `dk += scale · dsᵀ Q` for the query rows `span` (`ds` rows of `n`
    /// keys).
    pub(super) fn add_key_gradients(
        &mut self,
        dk: &mut [f32],
        ds: &[f32],
        span: &Range<usize>,
        n: usize,
        scale: f32,
    ) {
        match self {
            GradientProducts::F32 { inputs, d } => {
                let q = rows_of(inputs.q, span, *d);
                product(
                    dk,
                    (n, *d, span.len()),
                    transposed(ds, n),
                    plain(q, *d),
                    scale,
                    true,
                )
            }
            #[cfg(target_arch = "x86_64")]
            GradientProducts::Pairs { .. } => self.add_turned(dk, ds, n, (0, span), scale),
        }
    }

    /// `dq += scale · ds K` for the keys `part`.
    pub(super) fn add_query_gradients(
        &mut self,
        dq: &mut [f32],
        ds: &[f32],
        part: &Range<usize>,
        scale: f32,
    ) {
        match self {
            GradientProducts::F32 { inputs, d } => {
                let k = rows_of(inputs.k, part, *d);
                let sizes = (ds.len() / part.len().max(1), *d, part.len());
                product(dq, sizes, plain(ds, part.len()), plain(k, *d), scale, true)
            }
            #[cfg(target_arch = "x86_64")]
            GradientProducts::Pairs {
                words: [_, _, k, _],
                d,
                sums,
                scratch,
                ..
            } => {
                let k = bits_of(rows_of(k, part, *d / 2));
                sums.resize(dq.len(), 0.0);
                pair_tiles::times(ds, part.len(), k, *d, sums, scratch);
                add_scaled(dq, sums, scale);
            }
        }
    }

    /// `out += scale · tileᵀ X` on pairs, `X` the query rows `span` of the
    /// words numbered `which` (queries 0, output gradients 1); `tile` rows
    /// of `n` keys.
    #[cfg(target_arch = "x86_64")]
    fn add_turned(
        &mut self,
        out: &mut [f32],
        tile: &[f32],
        n: usize,
        (which, span): (usize, &Range<usize>),
        scale: f32,
    ) {
        let GradientProducts::Pairs {
            words,
            d,
            sums,
            scratch,
        } = self
        else {
            unreachable!("only the pair products turn their tiles")
        };
        let x = bits_of(rows_of(words[which], span, *d / 2));
        sums.resize(out.len(), 0.0);
        pair_tiles::times_turned(tile, n, x, *d, sums, scratch);
        add_scaled(out, sums, scale);
    }
}

/// The rows `range` of `x`, rows of `width`.
fn rows_of<'x>(x: &'x [f32], range: &Range<usize>, width: usize) -> &'x [f32] {
    &x[range.start * width..range.end * width]
}

/// `out += scale · sums`.
fn add_scaled(out: &mut [f32], sums: &[f32], scale: f32) {
    out.iter_mut().zip(sums).for_each(|(o, s)| *o += scale * s);
}
