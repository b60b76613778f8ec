//! Frozen weights held in 2 MiB pages.
//!
//! A decoding step streams every weight once, a few hundred megabytes, and
//! with 4 KiB pages that is a TLB miss every few weight rows. On an EPYC
//! with transparent huge pages left to `madvise` (Debian's default),
//! SmolLM2 decoded 1.15x faster in f32 and 1.03x in bf16 (medians of
//! alternating pairs on a noisy host) with its weights in 2 MiB pages.
//! The weights are already in memory when the model is built, so they are
//! collapsed into huge pages in place (`MADV_COLLAPSE`, Linux 6.1), after
//! marking them (`MADV_HUGEPAGE`) so that the kernel keeps them so. Both
//! are hints: where the kernel refuses (older kernels, huge pages turned
//! off), the weights stay as they are. `TUNEBENCH_HUGE_PAGES=0` skips it.

use candle_core::{CpuStorage, Storage, Tensor};

/// Bytes in a huge page on x86-64 and most arm64 kernels.
const HUGE_PAGE: usize = 2 << 20;

/// Whether weights are to be moved to huge pages (not when the user set
/// `TUNEBENCH_HUGE_PAGES=0`).
pub fn wanted() -> bool {
    std::env::var("TUNEBENCH_HUGE_PAGES").map_or(true, |v| v != "0")
}

/// Asks for `tensors`' CPU storage to be held in huge pages: the whole
/// 2 MiB pages inside the spans their buffers make, where buffers less
/// than a huge page apart count as one span (a small model's projections,
/// each under 2 MiB, lie one after another on the heap). Returns the bytes
/// the kernel moved: 0 where it refused, or for tensors not on the CPU.
pub fn hold<'a>(tensors: impl IntoIterator<Item = &'a Tensor>) -> usize {
    let mut spans: Vec<(usize, usize)> = tensors.into_iter().filter_map(span_of).collect();
    spans.sort_unstable();
    let mut joined: Vec<(usize, usize)> = Vec::new();
    for (start, end) in spans {
        match joined.last_mut() {
            Some(last) if start < last.1 + HUGE_PAGE => last.1 = last.1.max(end),
            _ => joined.push((start, end)),
        }
    }
    joined
        .into_iter()
        .map(|(start, end)| advise(start, end))
        .sum()
}

/// The addresses `[start, end)` of a CPU tensor's whole buffer.
fn span_of(tensor: &Tensor) -> Option<(usize, usize)> {
    let (storage, _) = tensor.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return None;
    };
    fn span<T>(values: &[T]) -> (usize, usize) {
        let start = values.as_ptr() as usize;
        (start, start + std::mem::size_of_val(values))
    }
    Some(match cpu {
        CpuStorage::F32(v) => span(v),
        CpuStorage::BF16(v) => span(v),
        CpuStorage::F16(v) => span(v),
        CpuStorage::F64(v) => span(v),
        _ => return None,
    })
}

/// The whole huge pages inside `[start, end)` marked and collapsed; the
/// bytes collapsed.
fn advise(start: usize, end: usize) -> usize {
    let (start, end) = (
        start.next_multiple_of(HUGE_PAGE),
        end / HUGE_PAGE * HUGE_PAGE,
    );
    if end <= start {
        return 0;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let (at, len) = (start as *mut libc::c_void, end - start);
        // SAFETY: advice about this process's own memory, which changes no
        // contents (a collapse copies the small pages into a huge one). The
        // range runs from one tensor buffer to another; what lies between
        // is the process's heap, and any hole in it only makes the kernel
        // refuse that part.
        let collapsed = unsafe {
            libc::madvise(at, len, libc::MADV_HUGEPAGE);
            libc::madvise(at, len, libc::MADV_COLLAPSE) == 0
        };
        if collapsed {
            return len;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// `AnonHugePages` of the mapping that holds `address`, in kB.
    fn huge_kb_at(address: usize) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((from, to)) = range.split_once('-')
                && let (Ok(from), Ok(to)) = (
                    usize::from_str_radix(from, 16),
                    usize::from_str_radix(to, 16),
                )
            {
                inside = (from..to).contains(&address);
            } else if inside && let Some(kb) = line.strip_prefix("AnonHugePages:") {
                return kb.trim().trim_end_matches("kB").trim().parse().ok();
            }
        }
        None
    }

    #[test]
    fn weights_keep_their_values_and_sit_in_huge_pages_where_the_kernel_allows() {
        let n = 3 * HUGE_PAGE / 4 + 123;
        let values: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 7.0).collect();
        let tensor = Tensor::from_vec(values.clone(), n, &Device::Cpu).unwrap();
        let moved = hold([&tensor]);
        assert_eq!(tensor.to_vec1::<f32>().unwrap(), values);
        // Three huge pages and a little: two or three whole ones inside.
        assert!(moved % HUGE_PAGE == 0 && moved <= 3 * HUGE_PAGE, "{moved}");
        if moved > 0 {
            let (storage, _) = tensor.storage_and_layout();
            let Storage::Cpu(cpu) = &*storage else {
                unreachable!()
            };
            let at = cpu.as_slice::<f32>().unwrap().as_ptr() as usize;
            let huge = huge_kb_at(at.next_multiple_of(HUGE_PAGE)).expect("smaps");
            assert!(huge >= (moved >> 10) as u64, "{huge} kB in huge pages");
        }
        // Many small buffers one after another on the heap make one span.
        let pieces: Vec<Tensor> = (0..64)
            .map(|i| Tensor::full(i as f32, 16 << 10, &Device::Cpu).unwrap())
            .collect();
        let joined = hold(&pieces);
        for (i, piece) in pieces.iter().enumerate() {
            assert!(
                piece
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .all(|&x| x == i as f32)
            );
        }
        // Where the allocator put them next to each other (as glibc does),
        // their 4 MiB hold at least one whole huge page.
        let mut spans: Vec<(usize, usize)> = pieces.iter().filter_map(span_of).collect();
        spans.sort_unstable();
        let adjacent = spans.windows(2).all(|w| w[1].0 < w[0].1 + HUGE_PAGE);
        if moved > 0 && adjacent {
            assert!(joined >= HUGE_PAGE, "{joined}");
        }
        // Smaller than a huge page: nothing to move.
        let small = Tensor::zeros(1000, candle_core::DType::F32, &Device::Cpu).unwrap();
        assert_eq!(hold([&small]), 0);
    }
}
