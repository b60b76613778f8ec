#!/bin/bash
# Checks `tunebench export-run --to llamafactory` against LLaMA-Factory
# itself: its parser accepts the exported train.yaml, and its data pipeline
# yields the same token ids and trained positions as tunebench for the first
# 5 training samples (the tiny model, samples uncut). Not run by CI: it needs
# LLaMA-Factory, which this script installs into target/handoff-venv when
# LF_PYTHON does not name a Python that has it.
#
#     scripts/check-export-run.sh [--update-fixture]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
py=${LF_PYTHON:-}
if [ -z "$py" ]; then
  py=$root/target/handoff-venv/bin/python
  if ! "$py" -c 'import llamafactory' 2>/dev/null; then
    python3 -m venv "$root/target/handoff-venv"
    "$root/target/handoff-venv/bin/pip" install -q llamafactory
  fi
fi
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
"$py" scripts/handoff/lf_tokens.py "$work/export" 5 "$work/lf.jsonl" > "$work/lf.log" 2>&1 || { tail -20 "$work/lf.log"; exit 1; }
"$tb" data tokens "$work/export/data/train.jsonl" --model "$work/tiny" --max-seq-len 8192 --limit 5 > "$work/tb.jsonl"
python3 - "$work/lf.jsonl" "$work/tb.jsonl" <<'PY'
import json, sys
lf = [json.loads(l) for l in open(sys.argv[1])]
tb = [json.loads(l) for l in open(sys.argv[2])]
assert len(lf) == len(tb) == 5, (len(lf), len(tb))
for i, (a, b) in enumerate(zip(lf, tb)):
    assert a["ids"] == b["ids"], f"sample {i + 1}: token ids differ"
    trained = [label != -100 for label in a["labels"]]
    assert trained == b["trained"], f"sample {i + 1}: trained positions differ"
    print(f"sample {i + 1}: {len(a['ids'])} tokens, {sum(trained)} trained: equal")
print("LLaMA-Factory parsed train.yaml and tokenised 5 samples as tunebench does")
PY
if [ "${1:-}" = "--update-fixture" ]; then
  mkdir -p tests/fixtures/handoff
  cp "$work/lf.jsonl" tests/fixtures/handoff/llamafactory_tiny_5.jsonl
  echo "wrote tests/fixtures/handoff/llamafactory_tiny_5.jsonl"
fi
