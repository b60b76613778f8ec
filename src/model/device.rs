//! Which device a model runs on: the names the command line and configs
//! use (`cpu`, `cuda`), whether this binary can reach a GPU, and the label
//! the workbench shows.

use candle_core::Device;
use std::sync::OnceLock;

/// The device a name stands for; `cuda` (or `gpu`) is the first GPU.
pub fn parse(name: &str) -> Result<Device, String> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" | "gpu" => Device::new_cuda(0).map_err(|e| {
            if cfg!(feature = "cuda") {
                format!("cuda: no usable GPU ({e})")
            } else {
                "cuda: this tunebench was built without GPU support; build it with `scripts/build-cuda.sh` (or `cargo build --release --features cuda` where a CUDA toolkit is installed)".to_string()
            }
        }),
        other => Err(format!("`{other}`: expected cpu or cuda")),
    }
}

/// Whether this binary has the CUDA path and a GPU answers (asked once).
pub fn cuda_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| cfg!(feature = "cuda") && Device::new_cuda(0).is_ok())
}

/// The device names a user can choose here.
pub fn choices() -> &'static [&'static str] {
    if cuda_available() {
        &["cpu", "cuda"]
    } else {
        &["cpu"]
    }
}

/// `cpu` or `cuda:N`, for the status bar and reports.
pub fn label(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_devices_and_an_unknown_one_is_refused() {
        assert!(parse("cpu").unwrap().is_cpu());
        assert!(parse("tpu").unwrap_err().contains("expected cpu or cuda"));
        assert_eq!(label(&Device::Cpu), "cpu");
        if !cfg!(feature = "cuda") {
            assert!(
                parse("cuda")
                    .unwrap_err()
                    .contains("built without GPU support")
            );
            assert_eq!(choices(), ["cpu"]);
        }
    }
}
