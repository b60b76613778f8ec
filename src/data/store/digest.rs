//! A fast 64-bit fingerprint of a file's bytes, fed block by block while the
//! index reads them, so knowing whether a file was rewritten (even with the
//! same size) costs no extra pass at open. Not cryptographic: it guards
//! against accidents (another program's edits), not against an adversary.
//!
//! Four independent lanes of the xxHash64 round keep the multiplier busy, so
//! it runs at several GB/s and adds little to indexing.

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const STRIPE: usize = 32;

#[derive(Debug, Clone)]
pub struct Digest {
    lanes: [u64; 4],
    /// Bytes of a stripe not complete yet.
    pending: [u8; STRIPE],
    pending_len: usize,
    total: u64,
}

impl Default for Digest {
    fn default() -> Self {
        Digest {
            lanes: [P1.wrapping_add(P2), P2, 0, P1.wrapping_neg()],
            pending: [0; STRIPE],
            pending_len: 0,
            total: 0,
        }
    }
}

fn round(lane: u64, word: u64) -> u64 {
    lane.wrapping_add(word.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

#[inline(always)]
fn word(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().expect("8 bytes"))
}

impl Digest {
    /// The fingerprint of `bytes` alone.
    pub fn of(bytes: &[u8]) -> u64 {
        let mut digest = Digest::default();
        digest.update(bytes);
        digest.finish()
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if self.pending_len > 0 {
            let take = (STRIPE - self.pending_len).min(bytes.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&bytes[..take]);
            self.pending_len += take;
            bytes = &bytes[take..];
            if self.pending_len < STRIPE {
                return;
            }
            let stripe = self.pending;
            self.stripe(&stripe);
            self.pending_len = 0;
        }
        let mut stripes = bytes.chunks_exact(STRIPE);
        for stripe in &mut stripes {
            self.stripe(stripe);
        }
        let rest = stripes.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.pending_len = rest.len();
    }

    /// Written out lane by lane: a loop over the lanes runs at two thirds
    /// the speed.
    #[inline(always)]
    fn stripe(&mut self, stripe: &[u8]) {
        let [a, b, c, d] = &mut self.lanes;
        *a = round(*a, word(&stripe[0..8]));
        *b = round(*b, word(&stripe[8..16]));
        *c = round(*c, word(&stripe[16..24]));
        *d = round(*d, word(&stripe[24..32]));
    }

    pub fn finish(&self) -> u64 {
        let [a, b, c, d] = self.lanes;
        let mut h = a
            .rotate_left(1)
            .wrapping_add(b.rotate_left(7))
            .wrapping_add(c.rotate_left(12))
            .wrapping_add(d.rotate_left(18));
        for lane in self.lanes {
            h = (h ^ round(0, lane)).wrapping_mul(P1).wrapping_add(P3);
        }
        h = h.wrapping_add(self.total);
        // The tail, zero-padded to whole words; the length above tells
        // "ab" from "ab\0".
        let mut tail = [0u8; STRIPE];
        tail[..self.pending_len].copy_from_slice(&self.pending[..self.pending_len]);
        for chunk in tail[..self.pending_len.div_ceil(8) * 8].chunks_exact(8) {
            h = (h ^ round(0, word(chunk))).rotate_left(27).wrapping_mul(P1);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(P2);
        h ^= h >> 29;
        h = h.wrapping_mul(P3);
        h ^ (h >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::rng::SplitMix64;

    #[test]
    fn block_boundaries_do_not_matter() {
        let mut rng = SplitMix64::new(7);
        let bytes: Vec<u8> = (0..1000).map(|_| rng.next_u64() as u8).collect();
        let whole = Digest::of(&bytes);
        for cut in [1, 7, 31, 32, 33, 500, 999] {
            let mut parts = Digest::default();
            parts.update(&bytes[..cut]);
            parts.update(&bytes[cut..]);
            assert_eq!(parts.finish(), whole, "cut at {cut}");
        }
    }

    #[test]
    fn one_changed_byte_or_length_changes_it() {
        let text = b"{\"text\": \"a\"}\n{\"text\": \"b\"}\n".to_vec();
        let base = Digest::of(&text);
        for i in 0..text.len() {
            let mut changed = text.clone();
            changed[i] ^= 1;
            assert_ne!(Digest::of(&changed), base, "byte {i}");
        }
        assert_ne!(Digest::of(b"ab"), Digest::of(b"ab\0"));
        assert_ne!(Digest::of(b""), Digest::of(b"\0"));
    }
}
