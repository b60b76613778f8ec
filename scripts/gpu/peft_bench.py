"""torch + PEFT's side of the GPU check: LoRA training tokens/s and peak
memory on a model folder, and greedy decode tokens/s with transformers.
Prints one JSON line.

    python peft_bench.py train MODEL --device cuda --dtype bf16 --seq 2048 --batch 4 [--steps 6]
    python peft_bench.py decode MODEL --device cuda --dtype bf16 [--prompt 128 --new 128]
"""
import argparse
import json
import resource
import time

import torch
from transformers import AutoModelForCausalLM


def peak_memory(device):
    if device == "cuda":
        return {"peak_gpu_mb": torch.cuda.max_memory_reserved() // 2**20}
    return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def load(a):
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[a.dtype]
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype, attn_implementation="sdpa")
    return model.to(a.device)


def train(a):
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(0)
    model = load(a)
    model.config.use_cache = False
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    # LoRA weights in f32 over a bf16 base, as tunebench keeps them.
    model = get_peft_model(model, LoraConfig(r=a.rank, lora_alpha=2 * a.rank, lora_dropout=0.0,
                                             target_modules=targets, task_type="CAUSAL_LM"),
                           autocast_adapter_dtype=True)
    if a.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    ids = torch.randint(0, a.tokens, (a.batch, a.seq), device=a.device)
    times = []
    for _ in range(a.steps + 1):
        sync(a.device)
        started = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(a.device)
        times.append(time.perf_counter() - started)
    median = sorted(times[1:])[len(times[1:]) // 2]
    return {"impl": "torch+peft", "seq": a.seq, "batch": a.batch, "dtype": a.dtype,
            "checkpointing": a.checkpointing, "step_s": round(median, 4),
            "tokens_per_s": round(a.batch * a.seq / median, 1), **peak_memory(a.device)}


def decode(a):
    torch.manual_seed(0)
    model = load(a).eval()
    ids = torch.randint(0, a.tokens, (1, a.prompt), device=a.device)

    def timed(new):
        sync(a.device)
        started = time.perf_counter()
        model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False)
        sync(a.device)
        return time.perf_counter() - started

    with torch.no_grad():
        timed(4)
        # The prompt's prefill and first token, taken off as tunebench's
        # decode rate leaves them out.
        first = min(timed(1) for _ in range(3))
        seconds = timed(a.new) - first
    return {"impl": "transformers", "dtype": a.dtype, "prompt": a.prompt, "new": a.new,
            "tokens_per_s": round((a.new - 1) / seconds, 1), "prefill_s": round(first, 4), **peak_memory(a.device)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["train", "decode"])
    p.add_argument("model")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bf16")
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--checkpointing", action="store_true")
    p.add_argument("--tokens", type=int, default=4000, help="ids drawn below this")
    p.add_argument("--prompt", type=int, default=128)
    p.add_argument("--new", type=int, default=128)
    a = p.parse_args()
    print(json.dumps(train(a) if a.what == "train" else decode(a)))


if __name__ == "__main__":
    main()
