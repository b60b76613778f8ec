"""Writes a Qwen2-architecture model folder with random weights for the GPU
check: any layer shape, and a vocabulary as large as asked (151,936 for
Qwen2.5's) even though its BPE tokenizer, trained on the given corpus, knows
fewer tokens; the extra rows cost what they cost in the real model's output
projection. transformers and tunebench both load it.

    python make_model.py --out DIR --corpus FILE [--hidden 896 --inter 4864
        --layers 24 --heads 14 --kv 2 --vocab 151936 --tokens 4096]
"""
import argparse
import json
import os

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def tokenizer(corpus, size):
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    bpe.train([corpus], trainers.BpeTrainer(
        vocab_size=size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", chat_template=CHATML)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--corpus", required=True)
    p.add_argument("--hidden", type=int, default=896)
    p.add_argument("--inter", type=int, default=4864)
    p.add_argument("--layers", type=int, default=24)
    p.add_argument("--heads", type=int, default=14)
    p.add_argument("--kv", type=int, default=2)
    p.add_argument("--vocab", type=int, default=151936)
    p.add_argument("--tokens", type=int, default=4096, help="tokenizer vocabulary")
    a = p.parse_args()
    torch.manual_seed(0)
    tok = tokenizer(a.corpus, a.tokens)
    config = Qwen2Config(
        hidden_size=a.hidden, intermediate_size=a.inter, num_hidden_layers=a.layers,
        num_attention_heads=a.heads, num_key_value_heads=a.kv,
        vocab_size=max(a.vocab, len(tok)), max_position_embeddings=32768,
        tie_word_embeddings=True, rms_norm_eps=1e-6,
        bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"))
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():
        for name, t in model.named_parameters():
            if name.endswith("bias"):
                t.normal_(0, 0.02)
            elif "norm" in name:
                t.copy_(1.0 + 0.1 * torch.randn_like(t))
            else:
                t.normal_(0, 0.02)
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out, safe_serialization=True)
    tok.save_pretrained(a.out)
    print(json.dumps({"out": a.out, "layers": a.layers, "hidden": a.hidden,
                      "vocab": config.vocab_size, "tokenizer_vocab": len(tok)}))


if __name__ == "__main__":
    main()
