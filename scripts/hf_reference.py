#!/usr/bin/env python3
"""Reference fixtures for the Hugging Face import: small random models of each supported
family, saved by `transformers` itself as checkpoint series, with the logits and every block
output on fixed token ids. The Rust tests (model/tests/hf.rs) load the same folders and must
compute the same numbers; CI needs no Python because the output is committed.

Run from the repository root:  python3 scripts/hf_reference.py
Writes tests/fixtures/hf/<variant>/step{0,1000,2000}/ (config.json, model.safetensors,
tokenizer.json, reference.safetensors) and tests/fixtures/hf/VERSIONS.
"""

import json
import os
import shutil
import zlib

import safetensors.torch
import tokenizers
import torch
import transformers

OUT = os.path.join("tests", "fixtures", "hf")
STEPS = [0, 1000, 2000]
# Fixed token ids the references are computed on: 2 sequences of 12 tokens.
IDS = torch.tensor([[(i * 7 + 3) % 96 for i in range(12)], [(i * 11 + 5) % 96 for i in range(12)]])
VOCAB = 96

BASE = dict(vocab_size=VOCAB)
VARIANTS = {
    # GPT-2: Conv1D weights, learned positions, tied embeddings, gelu_new.
    "gpt2": ("gpt2", dict(n_embd=32, n_layer=3, n_head=4, n_positions=32, activation_function="gelu_new"), None),
    "gpt2-topk": ("gpt2", dict(n_embd=32, n_layer=3, n_head=4, n_positions=32), (6, 1)),
    # GPT-NeoX / Pythia: interleaved fused QKV, partial rotary, parallel residual, untied.
    "gpt_neox": ("gpt_neox", dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                 intermediate_size=64, max_position_embeddings=32, rotary_pct=0.25,
                                 rotary_emb_base=10000, use_parallel_residual=True, hidden_act="gelu"), None),
    "gpt_neox-sequential-topk": ("gpt_neox", dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                 intermediate_size=64, max_position_embeddings=32, rotary_pct=1.0,
                                 rotary_emb_base=500, use_parallel_residual=False, hidden_act="gelu"), (8, 1)),
    # Llama: RMSNorm, SwiGLU, full rotary, grouped-query attention (2 kv heads for 4), untied.
    "llama": ("llama", dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                            intermediate_size=48, max_position_embeddings=32, rope_theta=10000.0,
                            rms_norm_eps=1e-6, tie_word_embeddings=False), None),
    "llama-tied-topk": ("llama", dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
                                      intermediate_size=48, max_position_embeddings=32, rope_theta=500.0,
                                      tie_word_embeddings=True), (8, 2)),
}


def tokenizer():
    """A small byte-level BPE tokenizer of exactly VOCAB tokens."""
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<|endoftext|>"],
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet()[:80])
    text = ["the dog runs to the farm and the cat eats bread"] * 50
    tok.train_from_iterator(text, trainer)
    return tok


def blocks(model):
    for name in ("transformer.h", "gpt_neox.layers", "model.layers"):
        obj = model
        try:
            for part in name.split("."):
                obj = getattr(obj, part)
            return list(obj)
        except AttributeError:
            continue
    raise ValueError("no blocks")


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    tok = tokenizer()
    assert tok.get_vocab_size() <= VOCAB, tok.get_vocab_size()
    for variant, (family, options, topk) in VARIANTS.items():
        config_class = transformers.AutoConfig.for_model(family).__class__
        for step in STEPS:
            torch.manual_seed(zlib.crc32(f"{variant}/{step}".encode()))
            config = config_class(**BASE, **options)
            if topk is not None:
                # A TopK LM in this family: keys this project reads from config.json.
                config.topk_k, config.n_nontopk = topk
            model = transformers.AutoModelForCausalLM.from_config(config).eval()
            with torch.no_grad():
                # Random weights with some spread (norm gains and biases away from 1 and 0).
                for name, p in model.named_parameters():
                    if p.dim() == 1:
                        p.copy_(torch.randn_like(p) * 0.1 + (1.0 if "norm" in name or "ln" in name else 0.0))
            outputs = []
            hooks = []
            n_topk = len(blocks(model)) - topk[1] if topk else 0
            for i, block in enumerate(blocks(model)):
                def hook(module, args, output, i=i):
                    hidden = output[0] if isinstance(output, tuple) else output
                    if i < n_topk:
                        # TopK on the block output: keep the k largest entries per token.
                        values, indices = hidden.topk(topk[0], dim=-1)
                        hidden = torch.zeros_like(hidden).scatter(-1, indices, values)
                    outputs.append(hidden.detach().clone())
                    if isinstance(output, tuple):
                        return (hidden,) + tuple(output[1:])
                    return hidden
                hooks.append(block.register_forward_hook(hook))
            with torch.no_grad():
                logits = model(IDS).logits
            for h in hooks:
                h.remove()
            folder = os.path.join(OUT, variant, f"step{step}")
            model.save_pretrained(folder, safe_serialization=True)
            tok.save(os.path.join(folder, "tokenizer.json"))
            reference = {"ids": IDS.to(torch.int64), "logits": logits.contiguous()}
            for i, h in enumerate(outputs):
                reference[f"block.{i}"] = h.contiguous()
            safetensors.torch.save_file(reference, os.path.join(folder, "reference.safetensors"))
            for extra in ("generation_config.json",):
                path = os.path.join(folder, extra)
                if os.path.exists(path):
                    os.remove(path)
    with open(os.path.join(OUT, "VERSIONS"), "w") as f:
        f.write(f"torch {torch.__version__}\ntransformers {transformers.__version__}\n"
                f"tokenizers {tokenizers.__version__}\nsafetensors {safetensors.__version__}\n")


if __name__ == "__main__":
    main()
