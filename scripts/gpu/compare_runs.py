"""Parity of two one-step tunebench runs (the GPU check): the first step's
loss and the adapter after that step's AdamW update. Prints one JSON line
and exits 1 when a difference is over its tolerance (the loss's relative to
the loss once it is above 1).

    python compare_runs.py RUN_A RUN_B --loss-tol 1e-4 --weight-tol 1e-4 --label NAME
"""
import argparse
import json
import os
import sys

from safetensors.numpy import load_file


def first_loss(run):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        for line in f:
            event = json.loads(line)
            if event.get("event") == "step":
                return event["loss"]
    raise SystemExit(f"{run}: no step event")


def adapter(run):
    return load_file(os.path.join(run, "adapter", "adapter_model.safetensors"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--loss-tol", type=float, required=True)
    p.add_argument("--weight-tol", type=float, required=True)
    p.add_argument("--label", required=True)
    a = p.parse_args()
    loss_a, loss_b = first_loss(a.a), first_loss(a.b)
    wa, wb = adapter(a.a), adapter(a.b)
    assert wa.keys() == wb.keys(), "the adapters name different tensors"
    # Relative to the tensor's largest entry: a step moves every LoRA entry
    # by about lr, so elementwise ratios of near-zero entries mean nothing.
    worst = 0.0
    for name in wa:
        x, y = wa[name].astype("float64"), wb[name].astype("float64")
        scale = max(abs(x).max(), 1e-12)
        worst = max(worst, float(abs(x - y).max() / scale))
    # Relative above 1: the tiny model's first loss is ~20, where bf16's
    # 8-bit mantissa alone moves it by more than 2e-2.
    loss_diff = abs(loss_a - loss_b) / max(abs(loss_b), 1.0)
    ok = loss_diff <= a.loss_tol and worst <= a.weight_tol
    print(json.dumps({"check": a.label, "loss_a": loss_a, "loss_b": loss_b,
                      "loss_diff": loss_diff, "adapter_rel_diff": worst, "ok": ok}))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
