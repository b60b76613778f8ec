//! llama.cpp's Q4_K_M recipe: Q4_K for most matrices, Q6_K for the output
//! projection and for the value and down projections of the layers that
//! matter most (the first and last eighth, and every third one between);
//! a matrix whose rows are not whole 256-value blocks takes the fallback
//! llama.cpp uses (Q4_K → Q5_0, Q6_K → Q8_0). Vectors stay f32.

use candle_core::quantized::GgmlDType;

/// Whether layer `i` of `n` gets the larger type (llama.cpp's
/// `use_more_bits`).
fn more_bits(i: usize, n: usize) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// The layer a tensor named `blk.N....` belongs to.
fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

/// The type `name` (llama.cpp's tensor name, `dims` as stored) takes in a
/// Q4_K_M file of `layers` layers; `has_output` is false when the
/// embedding doubles as the output projection. Returns the type and
/// whether it is a fallback for rows that do not split into 256-value blocks.
pub fn type_for(name: &str, dims: &[usize], layers: usize, has_output: bool) -> (GgmlDType, bool) {
    if dims.len() < 2 {
        return (GgmlDType::F32, false);
    }
    let is_output = name == "output.weight" || (!has_output && name == "token_embd.weight");
    let more =
        |kind: &str| name.ends_with(kind) && layer_of(name).is_some_and(|i| more_bits(i, layers));
    let wanted = if is_output || more(".attn_v.weight") || more(".ffn_down.weight") {
        GgmlDType::Q6K
    } else {
        GgmlDType::Q4K
    };
    let row = dims[dims.len() - 1];
    if row.is_multiple_of(wanted.block_size()) {
        return (wanted, false);
    }
    let fallback = match wanted {
        GgmlDType::Q6K => GgmlDType::Q8_0,
        _ => GgmlDType::Q5_0,
    };
    if row.is_multiple_of(fallback.block_size()) {
        (fallback, true)
    } else {
        (GgmlDType::F32, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_bits_for_the_first_and_last_eighth_and_every_third_between() {
        let chosen: Vec<usize> = (0..30).filter(|&i| more_bits(i, 30)).collect();
        assert_eq!(chosen, [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]);
    }

    #[test]
    fn the_recipe_on_smollm2s_shapes() {
        // Hidden 576 (not whole 256-value blocks), intermediate 1536, tied.
        let t = |name: &str, dims: &[usize]| type_for(name, dims, 30, false);
        assert_eq!(
            t("token_embd.weight", &[49152, 576]),
            (GgmlDType::Q8_0, true)
        );
        assert_eq!(
            t("blk.0.ffn_down.weight", &[576, 1536]),
            (GgmlDType::Q6K, false)
        );
        assert_eq!(
            t("blk.3.ffn_down.weight", &[576, 1536]),
            (GgmlDType::Q4K, false)
        );
        assert_eq!(
            t("blk.5.attn_v.weight", &[192, 576]),
            (GgmlDType::Q8_0, true)
        );
        assert_eq!(
            t("blk.4.attn_v.weight", &[192, 576]),
            (GgmlDType::Q5_0, true)
        );
        assert_eq!(
            t("blk.4.attn_q.weight", &[576, 576]),
            (GgmlDType::Q5_0, true)
        );
        assert_eq!(t("blk.4.attn_norm.weight", &[576]), (GgmlDType::F32, false));
        // With its own output projection, the embedding is an ordinary matrix.
        let untied = type_for("token_embd.weight", &[32000, 4096], 32, true);
        assert_eq!(untied, (GgmlDType::Q4K, false));
        assert_eq!(
            type_for("output.weight", &[32000, 4096], 32, true).0,
            GgmlDType::Q6K
        );
    }
}
