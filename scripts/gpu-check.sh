#!/bin/bash
# The GPU check, in one go (about 5 minutes on an H200): parity of the CUDA
# path with the CPU's, training and decode speed and memory against torch +
# PEFT and transformers on the same GPU, and a whole `tunebench train` run on
# the GPU. Results go to OUT: results.jsonl (one JSON line per measurement),
# summary.md (the tables) and log.txt (everything the commands printed).
#
#   scripts/gpu-check.sh OUT [--device cuda|cpu] [--binary PATH] [--python PY]
#
# The binary comes from scripts/build-cuda.sh (target/cuda/release/tunebench,
# or the compressed copy target/cuda/tunebench-cuda.gz);
# it loads the CUDA 13 libraries from the Python environment's nvidia-*
# wheels (torch's) when LD_LIBRARY_PATH does not already have them. PY needs
# torch, transformers, peft and safetensors.
#
# With --device cpu (no GPU) every step runs on the CPU with shapes cut down
# to minutes on two cores (2 layers, sequence 256), so the script itself can
# be checked on any machine; its "CUDA vs CPU" lines then compare the CPU
# with itself.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${1:?usage: scripts/gpu-check.sh OUT [--device cuda|cpu] [--binary PATH] [--python PY]}
shift
device=cuda
binary=
python=python3
while [ $# -gt 0 ]; do
  case $1 in
    --device) device=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2> /dev/null || true; rm -rf "$work"' EXIT
# The binary: on the CPU the plain release build (the CUDA one needs the
# driver's library to start); else the CUDA build, or its compressed copy
# where only that was carried here.
if [ -z "$binary" ] && [ "$device" = cpu ]; then
  binary=$root/target/release/tunebench
elif [ -z "$binary" ]; then
  binary=$root/target/cuda/release/tunebench
  [ ! -x "$binary" ] && binary=$root/target/cuda/tunebench-cuda.gz
fi
if [ "${binary%.gz}" != "$binary" ]; then
  gunzip -c "$binary" > "$work/tunebench"
  chmod +x "$work/tunebench"
  binary=$work/tunebench
fi
results=$out/results.jsonl
log=$out/log.txt
: > "$results"
: > "$log"
rm -rf "$out/e2e-run" # a previous check's
say() { echo "$*" | tee -a "$log" >&2; }
record() { echo "$1" | tee -a "$results"; }

# Shapes: the issue's on a GPU, minutes' worth on a CPU.
if [ "$device" = cuda ]; then
  dtype=bf16 layers=24 seq=2048 batches="1 4" steps=6 e2e_steps=216
else
  dtype=f32 layers=2 seq=256 batches="1 2" steps=3 e2e_steps=30
fi

# The CUDA libraries from the Python environment (torch's nvidia wheels).
if [ "$device" = cuda ]; then
  libs=$("$python" - <<'EOF'
import glob, os, site
found = set()
for base in site.getsitepackages():
    for name in ("libcublas.so.*", "libcublasLt.so.*", "libcurand.so.*", "libnvrtc.so.*", "libcudart.so.*"):
        for path in glob.glob(os.path.join(base, "nvidia", "**", name), recursive=True):
            found.add(os.path.dirname(path))
print(":".join(sorted(found)))
EOF
)
  export LD_LIBRARY_PATH=${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  if ldd "$binary" | grep -q "not found"; then
    say "the binary's libraries are not all found:"; ldd "$binary" | grep "not found" | tee -a "$log" >&2
    exit 1
  fi
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$log" >&2
fi
tb() { "$binary" "$@" 2>> "$log"; }
say "binary: $binary ($device, $dtype)"

# GPU memory in use, sampled every 100 ms while a command runs: the peak
# above what was in use before it started, in MB.
gpu_peak() {
  local samples=$work/smi.txt base
  if [ "$device" != cuda ]; then "$@"; echo 0 > "$work/peak"; return; fi
  base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$samples" &
  local sampler=$!
  "$@"
  kill "$sampler"; wait "$sampler" 2>/dev/null || true
  sort -n "$samples" | tail -1 | awk -v base="$base" '{print $1 - base}' > "$work/peak"
}

# A training config: model, device, dtype, data, then `key = value` lines
# for [training] and [data].
config() {
  local model=$1 dev=$2 dt=$3 data=$4 len=$5 training=$6
  cat <<EOF
[model]
name = "$model"
device = "$dev"
dtype = "$dt"
[lora]
r = 16
alpha = 32
dropout = 0.0
targets = ["all-linear"]
[data]
train = "$data"
eval_split = 0.0
max_seq_len = $len
[training]
$training
eval_at_start = false
checkpoint_every = 100000
EOF
}

say "== 1. parity: one step, CUDA f32 vs CPU f32 (1e-4) and CUDA bf16 vs CUDA f32 (2e-2)"
tb init-tiny --out "$work/tiny" > /dev/null
"$python" scripts/gpu/make_model.py --out "$work/qwen-small" --corpus sample-data/fastapi_projects.jsonl \
  --hidden 256 --inter 704 --layers 2 --heads 4 --kv 2 --vocab 4096 --tokens 4096 >> "$log" 2>&1
# A constant rate with no warmup, so the one step really moves the adapter.
# Adam's first step is lr * g / (|g| + eps): with the usual eps of 1e-8 that
# is lr * sign(g), and a gradient entry near zero whose sign rounding flips
# moves its weight by 2 lr whatever the precision. With eps 1 the step is
# about lr * g, so the updated weights compare the gradients themselves.
one_step="max_steps = 1
batch_size = 1
grad_accum = 1
lr = 1e-3
schedule = \"constant\"
warmup_ratio = 0.0
adam_eps = 1.0"
parity_ok=true
for model in tiny qwen-small; do
  # ref: the CPU in f32; f32 and bf16: the device under test.
  for run in "ref cpu f32" "f32 $device f32" "bf16 $device bf16"; do
    set -- $run
    config "$work/$model" "$2" "$3" "$root/sample-data/fastapi_projects.jsonl" 512 "$one_step" > "$work/$model-$1.toml"
    tb train --config "$work/$model-$1.toml" --run-dir "$work/run-$model-$1" > /dev/null
  done
  "$python" scripts/gpu/compare_runs.py "$work/run-$model-f32" "$work/run-$model-ref" \
    --loss-tol 1e-4 --weight-tol 1e-4 --label "$model: $device f32 vs cpu f32" >> "$results" || parity_ok=false
  "$python" scripts/gpu/compare_runs.py "$work/run-$model-bf16" "$work/run-$model-f32" \
    --loss-tol 2e-2 --weight-tol 2e-2 --label "$model: $device bf16 vs $device f32" >> "$results" || parity_ok=false
done
tail -4 "$results" >&2

say "== 2. training: Qwen2.5-0.5B shape ($layers layers, vocabulary 151,936), r 16 all-linear, $dtype, seq $seq"
"$python" scripts/gpu/make_model.py --out "$work/qwen05" --corpus sample-data/fastapi_projects.jsonl \
  --layers "$layers" >> "$log" 2>&1
# Raw text long enough that every sample fills the sequence.
"$python" - "$work/long.jsonl" "$seq" <<'EOF'
import json, random, sys
random.seed(0)
words = open("sample-data/fastapi_projects.jsonl").read().split()
with open(sys.argv[1], "w") as f:
    for _ in range(64):
        start = random.randrange(len(words) - 4 * int(sys.argv[2]))
        f.write(json.dumps({"text": " ".join(words[start:start + 2 * int(sys.argv[2])])}) + "\n")
EOF
for batch in $batches; do
  config "$work/qwen05" "$device" "$dtype" "$work/long.jsonl" "$seq" "max_steps = $steps
batch_size = $batch
grad_accum = 1
lr = 1e-4" > "$work/speed-$batch.toml"
  gpu_peak tb train --config "$work/speed-$batch.toml" --run-dir "$work/speed-$batch" > /dev/null
  ours=$("$python" - "$work/speed-$batch/metrics.jsonl" "$(cat "$work/peak")" "$batch" "$seq" <<'EOF'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1])]
steps = [e for e in steps if e.get("event") == "step"][1:]
rates = sorted(e["tokens_per_s"] for e in steps)
print(json.dumps({"impl": "tunebench", "seq": int(sys.argv[4]), "batch": int(sys.argv[3]),
                  "tokens_per_s": round(rates[len(rates) // 2], 1),
                  "peak_gpu_mb": int(float(sys.argv[2])),
                  "peak_rss_mb": max(e.get("peak_rss") or 0 for e in steps) // 2**20}))
EOF
)
  record "$ours"
  gpu_peak "$python" scripts/gpu/peft_bench.py train "$work/qwen05" --device "$device" --dtype "$dtype" \
    --seq "$seq" --batch "$batch" --steps $((steps - 1)) > "$work/peft.json" 2>> "$log"
  record "$("$python" -c 'import json,sys; r=json.load(open(sys.argv[1])); r["peak_gpu_mb_smi"]=int(float(sys.argv[2])); print(json.dumps(r))' "$work/peft.json" "$(cat "$work/peak")")"
done

say "== 3. greedy decode, same model, 128-token prompt, 128 new tokens"
prompt=$(head -c 600 sample-data/fastapi_projects.jsonl | tr -d '"{}\\')
tb generate --model "$work/qwen05" --device "$device" --dtype "$dtype" --raw --prompt "$prompt" \
  --max-new-tokens 128 --ignore-eos --json > "$work/gen.json"
record "$("$python" -c 'import json,sys; g=json.load(open(sys.argv[1])); print(json.dumps({"impl": "tunebench", "what": "decode", "new": len(g["tokens"]), "tokens_per_s": round((len(g["tokens"]) - 1) / max(g["decode_s"], 1e-9), 1), "prefill_s": g["prefill_s"]}))' "$work/gen.json")"
"$python" scripts/gpu/peft_bench.py decode "$work/qwen05" --device "$device" --dtype "$dtype" \
  --new 128 >> "$results" 2>> "$log"
tail -1 "$results" >&2

say "== 4. tunebench train on sample-data/tiny-train.toml with model.device = $device"
e2e_sets=(--set "model.name=\"$work/tiny\"" --set "model.device=\"$device\"")
[ "$e2e_steps" -gt 0 ] && e2e_sets+=(--set "training.max_steps=$e2e_steps")
started=$(date +%s.%N)
tb train --config sample-data/tiny-train.toml "${e2e_sets[@]}" --run-dir "$out/e2e-run" > "$work/e2e.txt"
seconds=$(echo "$(date +%s.%N) - $started" | bc)
record "$("$python" - "$out/e2e-run/metrics.jsonl" "$seconds" <<'EOF'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
evals = [e for e in events if e.get("event") == "eval"]
steps = [e for e in events if e.get("event") == "step"]
print(json.dumps({"check": "train sample config", "steps": len(steps), "seconds": round(float(sys.argv[2]), 1),
                  "base_eval_loss": evals[0]["eval_loss"] if evals else None,
                  "last_eval_loss": evals[-1]["eval_loss"] if evals else None,
                  "last_loss": steps[-1]["loss"] if steps else None}))
EOF
)"

"$python" - "$results" "$device" > "$out/summary.md" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"# GPU check ({sys.argv[2]})\n\n## Parity\n\n| check | loss | loss diff | adapter rel. diff | ok |\n|---|---|---|---|---|")
for r in rows:
    if "adapter_rel_diff" in r:
        print(f"| {r['check']} | {r['loss_a']:.6f} | {r['loss_diff']:.2e} | {r['adapter_rel_diff']:.2e} | {r['ok']} |")
# On a GPU the memory compared is the GPU's (nvidia-smi); on the CPU, peak RSS.
gpu = sys.argv[2] == "cuda"
unit = "GPU MB" if gpu else "peak RSS MB"
print(f"\n## Training\n\n| seq | batch | tunebench tok/s | torch+PEFT tok/s | ratio | tunebench {unit} | PEFT {unit} | ratio |\n|---|---|---|---|---|---|---|---|")
ours = {(r["seq"], r["batch"]): r for r in rows if r.get("impl") == "tunebench" and "batch" in r}
theirs = {(r["seq"], r["batch"]): r for r in rows if r.get("impl") == "torch+peft"}
for key, o in ours.items():
    t = theirs.get(key, {})
    tp = t.get("tokens_per_s")
    om, tm = (o["peak_gpu_mb"], t.get("peak_gpu_mb_smi")) if gpu else (o["peak_rss_mb"], t.get("peak_rss_mb"))
    speed = f"{o['tokens_per_s'] / tp:.2f}x" if tp else "-"
    memory = f"{om / tm:.2f}x" if tm else "-"
    print(f"| {key[0]} | {key[1]} | {o['tokens_per_s']} | {tp} | {speed} | {om} | {tm} | {memory} |")
decode = {r["impl"]: r for r in rows if r.get("what") == "decode" or r.get("impl") == "transformers"}
if decode:
    o, t = decode.get("tunebench", {}), decode.get("transformers", {})
    ratio = f" ({o['tokens_per_s'] / t['tokens_per_s']:.2f}x)" if o and t else ""
    print(f"\n## Greedy decode\n\ntunebench {o.get('tokens_per_s')} tok/s, transformers {t.get('tokens_per_s')} tok/s{ratio}")
for r in rows:
    if r.get("check") == "train sample config":
        print(f"\n## Train end to end\n\n{r['steps']} steps in {r['seconds']} s; eval loss {r['base_eval_loss']} (base) -> {r['last_eval_loss']}")
EOF
cat "$out/summary.md" >&2
$parity_ok || { say "parity failed"; exit 1; }
