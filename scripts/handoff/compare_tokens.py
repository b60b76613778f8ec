"""Compares tunebench's tokens (`data tokens`, JSON lines of ids and
trained) with LLaMA-Factory's and Axolotl's (ids and labels, -100 where not
trained) for the same samples; writes Axolotl's matching examples, in
tunebench's order, to AXOLOTL_OUT.

    python compare_tokens.py TUNEBENCH LLAMAFACTORY AXOLOTL_ALL AXOLOTL_OUT
"""
import json
import sys

tb_path, lf_path, ax_path, ax_out = sys.argv[1:5]
read = lambda path: [json.loads(line) for line in open(path)]
tb, lf, ax = read(tb_path), read(lf_path), read(ax_path)
assert len(tb) == len(lf) == 5, (len(tb), len(lf))
for i, (ours, theirs) in enumerate(zip(tb, lf)):
    assert theirs["ids"] == ours["ids"], f"LLaMA-Factory, sample {i + 1}: token ids differ"
    trained = [label != -100 for label in theirs["labels"]]
    assert trained == ours["trained"], f"LLaMA-Factory, sample {i + 1}: trained positions differ"
    print(f"LLaMA-Factory, sample {i + 1}: {len(ours['ids'])} tokens, {sum(trained)} trained: equal")
matched = []
for i, ours in enumerate(tb):
    same = [example for example in ax if example["ids"] == ours["ids"]]
    assert same, f"Axolotl, sample {i + 1}: no example with the same token ids"
    theirs = same[0]
    matched.append(theirs)
    trained = [label != -100 for label in theirs["labels"]]
    assert trained == ours["trained"], f"Axolotl, sample {i + 1}: trained positions differ"
    print(f"Axolotl, sample {i + 1}: {len(ours['ids'])} tokens, {sum(trained)} trained: equal")
with open(ax_out, "w") as f:
    for example in matched:
        f.write(json.dumps(example) + "\n")
print("both engines parsed their configs and tokenised 5 samples as above")
