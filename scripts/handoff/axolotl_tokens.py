"""Axolotl's own view of an exported run: loads axolotl.yaml with Axolotl's
config loader (its schema validation) and tokenises the training data with
its dataset pipeline; writes every example's input ids and labels to OUT,
one JSON line each (Axolotl may shuffle them; the check matches by ids).
With EXPORT_DIR alone it only loads the config, as `axolotl preprocess`
does on a machine without GPUs (a multi-GPU config's DeepSpeed file is read,
no process group is started).

    python axolotl_tokens.py EXPORT_DIR [OUT]
"""
import json
import os
import sys


def main():
    from axolotl.cli.args import TrainerCliArgs
    from axolotl.cli.config import load_cfg
    from axolotl.common.datasets import load_datasets

    export_dir = os.path.abspath(sys.argv[1])
    os.chdir(export_dir)
    if len(sys.argv) == 2:
        os.environ["AXOLOTL_IS_PREPROCESS"] = "1"
        cfg = load_cfg("axolotl.yaml")
        print(f"Axolotl accepted {export_dir}/axolotl.yaml (deepspeed: {bool(cfg.deepspeed)})")
        return
    out = os.path.abspath(sys.argv[2])
    cfg = load_cfg("axolotl.yaml")
    # One process: the check runs on small CPU machines.
    cfg.dataset_num_proc = 1
    meta = load_datasets(cfg=cfg, cli_args=TrainerCliArgs())
    with open(out, "w") as f:
        for example in meta.train_dataset:
            record = {"ids": list(example["input_ids"]), "labels": list(example["labels"])}
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
