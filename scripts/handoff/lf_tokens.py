"""LLaMA-Factory's own view of an exported run: parses its train.yaml with
LLaMA-Factory's argument parser (the validation `llamafactory-cli train`
does first) and writes, for the first N training samples, the token ids and
labels its data pipeline produces to OUT, one JSON line each (stdout gets
LLaMA-Factory's own messages). With EXPORT_DIR alone it only parses.

    python lf_tokens.py EXPORT_DIR [N OUT]
"""
import json
import os
import sys

import yaml
from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
from llamafactory.hparams import get_train_args
from llamafactory.model import load_tokenizer

export_dir = sys.argv[1]
os.chdir(export_dir)
with open("train.yaml") as f:
    args = yaml.safe_load(f)
model_args, data_args, training_args, _, _ = get_train_args(args)
if len(sys.argv) == 2:
    print(f"LLaMA-Factory accepted {export_dir}/train.yaml (deepspeed: {training_args.deepspeed})")
    sys.exit(0)
count, out = int(sys.argv[2]), os.path.abspath(sys.argv[3])
modules = load_tokenizer(model_args)
template = get_template_and_fix_tokenizer(modules["tokenizer"], data_args)
dataset = get_dataset(template, model_args, data_args, training_args, stage="sft", **modules)
with open(out, "w") as f:
    for i, example in enumerate(dataset["train_dataset"]):
        if i >= count:
            break
        f.write(json.dumps({"ids": example["input_ids"], "labels": example["labels"]}) + "\n")
