//! The backward pass's tile products over one key/value head: in f32
//! through `gemm`, or on the CPU's bf16 pairs.

use super::{HeadInputs, product};
#[cfg(target_arch = "x86_64")]
use super::{add_scaled, bits_of, pair_tiles};
use crate::model::product::{plain, transposed};
use std::ops::Range;

/// One of a head's inputs, as a product reads it: its position in
/// [`HeadInputs::words`].
#[derive(Debug, Clone, Copy)]
pub(super) enum Input {
    Queries = 0,
    OutputGradients = 1,
    Keys = 2,
    Values = 3,
}

impl<'a> HeadInputs<'a> {
    fn rows(&self, input: Input) -> &'a [f32] {
        match input {
            Input::Queries => self.q,
            Input::OutputGradients => self.d_out,
            Input::Keys => self.k,
            Input::Values => self.v,
        }
    }
}

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

    /// `out = A Bᵀ`, `A` the query rows `span` of one input (queries for
    /// the scores, output gradients for the score gradients), `B` the keys
    /// `part` of another (keys, values).
    pub(super) fn scores(
        &mut self,
        out: &mut [f32],
        (a, b): (Input, Input),
        span: &Range<usize>,
        part: &Range<usize>,
    ) {
        match self {
            GradientProducts::F32 { inputs, d } => {
                let (a, b) = (
                    rows_of(inputs.rows(a), span, *d),
                    rows_of(inputs.rows(b), part, *d),
                );
                let sizes = (span.len(), part.len(), *d);
                product(out, sizes, plain(a, *d), transposed(b, *d), 1.0, false)
            }
            #[cfg(target_arch = "x86_64")]
            GradientProducts::Pairs {
                words, d, scratch, ..
            } => {
                let a = rows_of(words[a as usize], span, *d / 2);
                let b = bits_of(rows_of(words[b as usize], part, *d / 2));
                pair_tiles::times_transposed(a, b, *d, out, scratch)
            }
        }
    }

    /// `out += scale · tileᵀ X`, `tile` rows of `n` keys (probabilities for
    /// the value gradients, score gradients for the key gradients), `X` the
    /// query rows `span` of `input` (output gradients, queries).
    pub(super) fn add_turned(
        &mut self,
        out: &mut [f32],
        (tile, n): (&[f32], usize),
        (input, span): (Input, &Range<usize>),
        scale: f32,
    ) {
        match self {
            GradientProducts::F32 { inputs, d } => {
                let x = rows_of(inputs.rows(input), span, *d);
                let sizes = (n, *d, span.len());
                product(out, sizes, transposed(tile, n), plain(x, *d), scale, true)
            }
            #[cfg(target_arch = "x86_64")]
            GradientProducts::Pairs {
                words,
                d,
                sums,
                scratch,
            } => {
                let x = bits_of(rows_of(words[input as usize], span, *d / 2));
                sums.resize(out.len(), 0.0);
                pair_tiles::times_turned(tile, n, x, *d, sums, scratch);
                add_scaled(out, sums, scale);
            }
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
            } => {
                let k = bits_of(rows_of(k, part, *d / 2));
                sums.resize(dq.len(), 0.0);
                pair_tiles::times(ds, part.len(), k, *d, sums, scratch);
                add_scaled(dq, sums, scale);
            }
        }
    }
}

/// The rows `range` of `x`, rows of `width`.
fn rows_of<'x>(x: &'x [f32], range: &Range<usize>, width: usize) -> &'x [f32] {
    &x[range.start * width..range.end * width]
}
