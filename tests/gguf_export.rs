//! `tunebench export`: a GGUF base with an adapter, written back as GGUF,
//! computes what the base with the adapter computes (in f32; Q8_0 tensors
//! within their rounding of those), for a Llama model (query and key rows
//! permuted the llama.cpp way) and a Qwen2 one; the Modelfile points at it;
//! a safetensors base is refused with the way to do it instead.

mod common;
#[path = "common/gguf.rs"]
mod gguf_writer;

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};
use std::path::Path;
use tunebench::model::adapter;
use tunebench::model::decoder::Mode;
use tunebench::model::gguf::{GgufFile, GgufWeights};
use tunebench::model::lora::LoraSpec;
use tunebench::model::weights::TensorSource;
use tunebench::model::{LoadOptions, Model, max_abs, max_abs_diff};

fn load(path: &Path) -> Model {
    Model::load(path.to_str().unwrap(), &LoadOptions::default()).unwrap()
}

fn logits(model: &Model, mode: Mode) -> Tensor {
    let ids = [1u32, 17, 300, 42, 9, 255, 3, 100];
    let input = Tensor::new(&ids[..], &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let hidden = model.decoder.hidden(&input, None, None, mode).unwrap();
    model.decoder.logits(&hidden, false).unwrap()
}

/// A random adapter on every projection of the model in `dir`, saved in `out`.
fn random_adapter(dir: &Path, out: &Path) {
    let mut model = load(dir);
    let spec = LoraSpec::all_linear(4, 8.0);
    adapter::attach_new(&mut model.decoder, &spec, 5).unwrap();
    adapter::randomize(&mut model.decoder, 0.2, 5).unwrap();
    adapter::save(&model.decoder, &spec, dir.to_str().unwrap(), out).unwrap();
}

fn export(model: &Path, adapter: &Path, out: &Path, quant: &str) -> std::process::Output {
    common::tunebench(&[
        "export",
        "--model",
        model.to_str().unwrap(),
        "--adapter",
        adapter.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quant",
        quant,
    ])
}

#[test]
fn exported_gguf_computes_what_the_base_with_its_adapter_computes() {
    let work = tempfile::tempdir().unwrap();
    let tiny = common::tiny_model(work.path());
    let llama = common::root().join("tests/fixtures/parity/models/llama");
    for (dir, pre) in [(llama, "default"), (tiny, "qwen2")] {
        let name = dir.file_name().unwrap().to_str().unwrap().to_string();
        let base = work.path().join(format!("{name}.gguf"));
        gguf_writer::write(&dir, &base, GgmlDType::F32, pre);
        let adapter_dir = work.path().join(format!("{name}-adapter"));
        random_adapter(&dir, &adapter_dir);
        let mut adapted = load(&base);
        adapted.load_adapter(&adapter_dir).unwrap();
        let want = logits(&adapted, Mode::ADAPTED);
        let moved = max_abs_diff(&want, &logits(&adapted, Mode::BASE)).unwrap();
        assert!(
            moved > 1e-3,
            "{name}: the adapter changes nothing ({moved})"
        );

        let f32_out = work.path().join(format!("{name}-f32.gguf"));
        common::ok(export(&base, &adapter_dir, &f32_out, "f32"));
        let diff = max_abs_diff(&want, &logits(&load(&f32_out), Mode::BASE)).unwrap();
        assert!(diff < 1e-4, "{name} f32: logits differ by {diff}");
        let modelfile = std::fs::read_to_string(work.path().join("Modelfile")).unwrap();
        assert!(
            modelfile.contains(&format!("FROM ./{name}-f32.gguf")),
            "{modelfile}"
        );

        let q8_out = work.path().join(format!("{name}-q8.gguf"));
        common::ok(export(&base, &adapter_dir, &q8_out, "q8_0"));
        // Each Q8_0 tensor within a 127th of its 32-value block's range of
        // the f32 export's (so within a 127th of the tensor's largest value).
        let (f32_file, q8_file) = (
            GgufFile::open(&f32_out).unwrap(),
            GgufFile::open(&q8_out).unwrap(),
        );
        let config = f32_file.model_config().unwrap();
        let exact = GgufWeights::new(&f32_file, &config, DType::F32, &Device::Cpu).unwrap();
        let rounded = GgufWeights::new(&q8_file, &config, DType::F32, &Device::Cpu).unwrap();
        for tensor in config.tensor_names() {
            let want = exact.get(&tensor).unwrap();
            let scale = max_abs(&want).unwrap();
            let diff = max_abs_diff(&want, &rounded.get(&tensor).unwrap()).unwrap();
            assert!(
                diff <= scale / 127.0 + 1e-6,
                "{name} q8_0 {tensor}: off by {diff} at {scale}"
            );
        }
        let size = |p: &Path| std::fs::metadata(p).unwrap().len();
        assert!(
            size(&q8_out) < size(&f32_out) / 2,
            "{name}: q8_0 is not smaller"
        );
    }

    // q4_k_m: llama.cpp's mix on the tiny model's 4 layers (layers 2 and 3
    // get the larger type).
    let tiny = work.path().join("tiny");
    let base = work.path().join("tiny.gguf");
    let mixed = work.path().join("tiny-q4_k_m.gguf");
    common::ok(export(
        &base,
        &work.path().join("tiny-adapter"),
        &mixed,
        "q4_k_m",
    ));
    let file = GgufFile::open(&mixed).unwrap();
    let type_of = |name: &str| file.content.tensor_infos[name].ggml_dtype;
    assert_eq!(type_of("blk.1.attn_v.weight"), GgmlDType::Q4K);
    assert_eq!(type_of("blk.2.attn_v.weight"), GgmlDType::Q6K);
    // Rows of 688 values split into neither Q6_K's nor Q8_0's blocks.
    assert_eq!(type_of("blk.3.ffn_down.weight"), GgmlDType::F32);
    assert_eq!(type_of("blk.0.ffn_gate.weight"), GgmlDType::Q4K);
    assert_eq!(type_of("blk.0.attn_norm.weight"), GgmlDType::F32);
    let file_type = file.content.metadata["general.file_type"].to_u32().unwrap();
    assert_eq!(file_type, 15, "llama.cpp's MOSTLY_Q4_K_M");
    load(&mixed);

    // A safetensors base: refused, saying what to do, and nothing written.
    let out = work.path().join("from-dir.gguf");
    let refused = export(&tiny, &work.path().join("tiny-adapter"), &out, "q8_0");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("convert_hf_to_gguf.py"),
        "{stderr}"
    );
    assert!(!out.exists());
}
