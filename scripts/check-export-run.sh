#!/bin/bash
# Checks `tunebench export-run` against the engines themselves (the tiny
# model, samples uncut, the first 5 training samples):
# - LLaMA-Factory's parser accepts train.yaml and its data pipeline yields
#   the same token ids and trained positions as tunebench;
# - Axolotl's config loader accepts axolotl.yaml and its pipeline, reading
#   the input_output segments, yields the same token ids and trained
#   positions.
# Not run by CI. The engines come from LF_PYTHON / AXOLOTL_PYTHON, else they
# are installed into target/handoff-venv and target/axolotl-venv.
#
#     scripts/check-export-run.sh [--update-fixture]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# A Python with `package` importable: $2, else a venv under target/.
python_with() {
  local package=$1 given=$2 venv=$root/target/$3
  if [ -n "$given" ]; then echo "$given"; return; fi
  if ! "$venv/bin/python" -c "import $package" 2>/dev/null; then
    python3 -m venv "$venv" && "$venv/bin/pip" install -q "$package" >&2
  fi
  echo "$venv/bin/python"
}
py=$(python_with llamafactory "${LF_PYTHON:-}" handoff-venv)
axpy=$(python_with axolotl "${AXOLOTL_PYTHON:-}" axolotl-venv)
# DeepSpeed (and the ninja it calls) for the multi-GPU configs.
for python in "$py" "$axpy"; do
  "$python" -c "import deepspeed" 2>/dev/null || "$python" -m pip install -q deepspeed ninja >&2
done
export AXOLOTL_DO_NOT_TRACK=1 DO_NOT_TRACK=1
cargo build --release -q
tb=$root/target/release/tunebench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$tb" init-tiny --out "$work/tiny" > /dev/null
sed -e "s|^name = .*|name = \"$work/tiny\"|" \
    -e "s|^train = .*|train = \"$root/sample-data/fastapi_projects.jsonl\"|" \
    -e "s|^max_seq_len = .*|max_seq_len = 8192|" \
    sample-data/tiny-train.toml > "$work/run.toml"
"$tb" export-run --config "$work/run.toml" --to llamafactory --out "$work/export"
"$tb" export-run --config "$work/run.toml" --to axolotl --out "$work/axolotl"
# Multi-GPU configs (DeepSpeed ZeRO-3), parsed as a launch on 8 GPUs would
# parse them, without starting a process group (no GPU here).
"$tb" export-run --config "$work/run.toml" --to llamafactory --out "$work/lf-multi" --gpus 4 --nodes 2
"$tb" export-run --config "$work/run.toml" --to axolotl --out "$work/ax-multi" --gpus 4 --nodes 2
PATH=$(dirname "$py"):$PATH RANK=0 LOCAL_RANK=0 WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=29517 \
  "$py" scripts/handoff/lf_tokens.py "$work/lf-multi" 2>&1 | tail -1
PATH=$(dirname "$axpy"):$PATH "$axpy" scripts/handoff/axolotl_tokens.py "$work/ax-multi" 2>&1 | tail -1
"$py" scripts/handoff/lf_tokens.py "$work/export" 5 "$work/lf.jsonl" > "$work/lf.log" 2>&1 || { tail -20 "$work/lf.log"; exit 1; }
"$axpy" scripts/handoff/axolotl_tokens.py "$work/axolotl" "$work/axolotl-all.jsonl" > "$work/ax.log" 2>&1 || { tail -20 "$work/ax.log"; exit 1; }
"$tb" data tokens "$work/export/data/train.jsonl" --model "$work/tiny" --max-seq-len 8192 --limit 5 > "$work/tb.jsonl"
python3 scripts/handoff/compare_tokens.py "$work/tb.jsonl" "$work/lf.jsonl" "$work/axolotl-all.jsonl" "$work/axolotl.jsonl"
if [ "${1:-}" = "--update-fixture" ]; then
  mkdir -p tests/fixtures/handoff
  cp "$work/lf.jsonl" tests/fixtures/handoff/llamafactory_tiny_5.jsonl
  cp "$work/axolotl.jsonl" tests/fixtures/handoff/axolotl_tiny_5.jsonl
  echo "wrote tests/fixtures/handoff/{llamafactory,axolotl}_tiny_5.jsonl"
fi
