"""torch + PEFT side of benches/train_real.rs: LoRA r 16 / alpha 32 on all
seven projections, f32, batch 1, SDPA attention, AdamW, on the token row the
Rust side wrote (ids and which positions are trained). Prints one JSON line:
tokens/s over the timed steps (after one warm-up) and peak RSS.

    python benches/peft_long.py --tokens target/bench-data/train-real-1024.json \
        --model /tmp/smollm2-hf [--checkpointing] [--steps 3]
"""

import argparse
import json
import os
import resource
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, LlamaConfig

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def load(args):
    if args.model:
        return AutoModelForCausalLM.from_pretrained(
            args.model, dtype=torch.float32, attn_implementation="sdpa"
        )
    # SmolLM2-135M's shape with random weights, as the Rust side builds it.
    config = LlamaConfig(
        hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
        tie_word_embeddings=True, max_position_embeddings=8192,
        rms_norm_eps=1e-5, rope_theta=100000.0,
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tokens", required=True)
    p.add_argument("--model")
    p.add_argument("--random-smollm2", action="store_true")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--checkpointing", action="store_true")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    row = json.load(open(args.tokens))
    ids = torch.tensor([row["ids"]])
    # transformers shifts labels itself: label p is the target of position p - 1.
    labels = torch.tensor([[i if t else -100 for i, t in zip(row["ids"], row["trained"])]])
    seq = ids.shape[1]

    model = load(args)
    model.config.use_cache = False
    if args.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = get_peft_model(
        model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=TARGETS)
    )
    model.train()
    optim = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.0
    )
    losses = []
    for step in range(args.steps + 1):
        if step == 1:
            started = time.perf_counter()
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        optim.zero_grad()
        losses.append(round(loss.item(), 6))
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "impl": "torch+peft", "seq": seq, "checkpointing": args.checkpointing,
        "tokens_per_s": round(args.steps * seq / seconds, 1),
        "step_s": round(seconds / args.steps, 2), "peak_rss_mb": round(peak_mb),
        "losses": losses, "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
