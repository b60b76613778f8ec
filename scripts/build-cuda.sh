#!/bin/bash
# Builds tunebench with the `cuda` feature, on a machine with or without a
# CUDA toolkit and a GPU.
#
#   scripts/build-cuda.sh           release build: target/cuda/release/tunebench
#                                   (and target/cuda/tunebench-cuda.gz, stripped)
#   scripts/build-cuda.sh --check   `cargo check --features cuda` only
#
# With nvcc on PATH (a CUDA toolkit installed), that toolkit is used as is.
# Otherwise the compiler, headers and link libraries come from NVIDIA's PyPI
# wheels, CUDA 13.0 (the newest that driver 580 runs: kernels compiled by a
# newer nvcc carry PTX that driver cannot load), unpacked under
# target/cuda-toolkit; nothing is installed system-wide. No wheel ships the
# driver library (libcuda.so.1 comes with the NVIDIA driver), so the link
# uses a stub with its name and symbols; the real one is loaded at run time.
#
# CUDA_COMPUTE_CAP picks the GPU generation the kernels are compiled for:
# 90 (Hopper) by default. candle's element-wise kernels are PTX, which newer
# GPUs compile when they load them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mode=${1:-build}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/cuda}
toolkit=$root/target/cuda-toolkit
wheels=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-nvrtc==13.0.88
  nvidia-cuda-cccl==13.0.85
  nvidia-nvvm==13.0.88
  nvidia-cublas==13.0.0.19
  nvidia-curand==10.4.0.35
)

# The wheels unpacked into one toolkit folder (bin, include, lib, nvvm), the
# unversioned library names the linker looks for, and the driver stub.
install_toolkit() {
  local stamp=$toolkit/.wheels
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${wheels[*]}" ]; then
    return
  fi
  echo "installing the CUDA 13.0 compiler and libraries from PyPI into $toolkit" >&2
  rm -rf "$toolkit"
  mkdir -p "$toolkit/download"
  python3 -m pip download -q --no-deps -d "$toolkit/download" "${wheels[@]}"
  for wheel in "$toolkit"/download/*.whl; do
    python3 -m zipfile -e "$wheel" "$toolkit/unpacked"
  done
  cp -a "$toolkit"/unpacked/nvidia/cu13/. "$toolkit/"
  rm -rf "$toolkit/unpacked" "$toolkit/download"
  chmod +x "$toolkit"/bin/* "$toolkit"/nvvm/bin/*
  (cd "$toolkit/lib" && for so in *.so.*; do
    case $so in *builtins*|*.alt.*) continue ;; esac
    ln -sf "$so" "${so%%.so.*}.so"
  done)
  driver_stub
  echo "${wheels[*]}" > "$stamp"
}

# libcuda.so for the linker: every driver function cudarc declares, as an
# empty function, under the real library's SONAME (libcuda.so.1), so the
# binary asks for the driver's library at run time.
driver_stub() {
  local cudarc sys
  cudarc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-* | sort -V | tail -1)
  sys=$cudarc/src/driver/sys
  mkdir -p "$toolkit/lib/stubs"
  sed -n 's/^ *fn \(cu[A-Za-z0-9_]*\)(.*/\1/p' "$sys"/mod.rs | sort -u |
    sed 's/.*/void &(void) {}/' > "$toolkit/lib/stubs/cuda_stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$toolkit/lib/stubs/libcuda.so" \
    "$toolkit/lib/stubs/cuda_stub.c"
}

if command -v nvcc > /dev/null; then
  echo "using the CUDA toolkit of $(command -v nvcc)" >&2
else
  cargo fetch -q
  install_toolkit
  export CUDA_HOME=$toolkit PATH=$toolkit/bin:$PATH CUDARC_CUDA_VERSION=13000
  # The libraries' own dependencies (libcublas.so.13 on libcublasLt.so.13).
  export RUSTFLAGS="${RUSTFLAGS:-} -C link-arg=-Wl,-rpath-link,$toolkit/lib"
fi

if [ "$mode" = "--check" ]; then
  cargo check --features cuda --all-targets
  echo "cargo check --features cuda: ok"
  exit 0
fi
cargo build --release --features cuda
binary=$CARGO_TARGET_DIR/release/tunebench
# A stripped, compressed copy to carry to a GPU machine that has no Rust
# (the binary with debug info is ~200 MB; this is ~27 MB).
strip -o "$CARGO_TARGET_DIR/tunebench-cuda" "$binary"
gzip -f "$CARGO_TARGET_DIR/tunebench-cuda"
echo "built $binary"
echo "to carry elsewhere: $CARGO_TARGET_DIR/tunebench-cuda.gz ($(du -m "$CARGO_TARGET_DIR/tunebench-cuda.gz" | cut -f1) MB, stripped; scripts/gpu-check.sh unpacks it)"
echo "CUDA libraries it loads at run time (the NVIDIA driver's libcuda.so.1, and CUDA 13 runtime libraries, e.g. from torch's nvidia-* wheels, on LD_LIBRARY_PATH):"
readelf -d "$binary" | sed -n 's/.*NEEDED.*\[\(lib\(cu\|nv\).*\)\]/  \1/p'
