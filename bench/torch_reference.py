#!/usr/bin/env python3
"""The `tiny` TopK LM in PyTorch, for a side-by-side speed check against `pipeline bench train`.

Same shape and step as model/src: pre-norm GPT blocks, learned positions, GELU MLP, TopK on
the residual stream after each of the first n_layers - n_nontopk blocks (scatter of the k
largest values), AdamW. Run it on the same machine in the same sitting as the Rust bench:

    python3 -m venv /tmp/torch && /tmp/torch/bin/pip install torch
    /tmp/torch/bin/python bench/torch_reference.py --threads 2
    cargo pipeline bench train

On a GPU, beside `cargo run -p model --features wgpu --example train_speed -- backend=wgpu`
(same shape arguments): `python3 bench/torch_reference.py --device cuda`.
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class TopK(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, x):
        vals, idx = x.topk(self.k, dim=-1)
        return torch.zeros_like(x).scatter(-1, idx, vals)


class Block(nn.Module):
    def __init__(self, d, h, f, topk):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.c_fc, self.mlp_proj = nn.Linear(d, f), nn.Linear(f, d)
        self.h, self.topk = h, topk

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.h, c // self.h).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).reshape(b, t, c))
        x = x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))
        return self.topk(x) if self.topk is not None else x


class Gpt(nn.Module):
    def __init__(self, vocab, block, d, h, layers, f, k, n_nontopk):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(block, d)
        self.blocks = nn.ModuleList(
            Block(d, h, f, TopK(k) if i < layers - n_nontopk else None) for i in range(layers))
        self.ln_f, self.lm_head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for blk in self.blocks:
            x = blk(x)
        return self.lm_head(self.ln_f(x))


def tokens_per_second(dense, a):
    torch.manual_seed(1)
    dev = torch.device(a.device)
    model = Gpt(a.vocab, a.block, a.d_model, a.heads, a.layers, a.d_ff, a.k,
                a.layers if dense else a.n_nontopk).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    data = torch.randint(0, a.vocab, (200_000,), device=dev)
    t, b = a.block, a.batch

    def step():
        starts = torch.randint(0, len(data) - t - 1, (b,), device=dev)
        idx = starts[:, None] + torch.arange(t + 1, device=dev)
        x, y = data[idx[:, :-1]], data[idx[:, 1:]]
        loss = F.cross_entropy(model(x).view(-1, a.vocab), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    sync()
    return a.steps * b * t / (time.perf_counter() - start)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    # The tiny preset's shape; pass another preset's to compare at that size.
    for name, default in [("vocab", 2048), ("block", 64), ("d_model", 128), ("heads", 4),
                          ("layers", 4), ("d_ff", 512), ("k", 32), ("n_nontopk", 1),
                          ("batch", 16), ("steps", 15)]:
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int, default=default)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.device}, {args.threads} threads, d_model {args.d_model}, "
          f"{args.layers} layers, batch {args.batch} x {args.block}")
    print(f"  topk : {tokens_per_second(False, args):9.0f} tokens/s")
    print(f"  dense: {tokens_per_second(True, args):9.0f} tokens/s")
