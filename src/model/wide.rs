//! Loops compiled for the widest vectors the CPU has. The crate is built
//! for baseline x86-64, where the compiler vectorises four floats at a time
//! and has no FMA; `widest!` compiles one body for AVX-512, for AVX2 with
//! FMA and for the baseline, and each call takes the first the CPU has.

/// Defines the function written inside it three times over (see the module
/// doc); `is_x86_feature_detected!` caches its answer, so choosing costs a
/// load and a test per call; one type parameter may come with it. The
/// body should hold plain loops: a closure
/// is compiled without its caller's target features unless it is inlined.
macro_rules! widest {
    ($(#[$attr:meta])* $vis:vis fn $name:ident $(<$g:ident: $bound:path>)? ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$attr])*
        $vis fn $name $(<$g: $bound>)? ($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body $(<$g: $bound>)? ($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512 $(<$g: $bound>)? ($($arg: $ty),*) $(-> $ret)? {
                    body $(::<$g>)? ($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2 $(<$g: $bound>)? ($($arg: $ty),*) $(-> $ret)? {
                    body $(::<$g>)? ($($arg),*)
                }
                if is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the features the function is compiled for.
                    return unsafe { avx512 $(::<$g>)? ($($arg),*) };
                }
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    // SAFETY: as above.
                    return unsafe { avx2 $(::<$g>)? ($($arg),*) };
                }
            }
            body $(::<$g>)? ($($arg),*)
        }
    };
}

pub(crate) use widest;
