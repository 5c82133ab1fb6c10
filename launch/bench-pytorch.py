#!/usr/bin/env python3
"""The PyTorch reference for `rezero bench`: the same byte-level ReZero Transformer (README, "What
it trains"), the same training step (forward, backward, AdamW), float32, eager mode, attention by
F.scaled_dot_product_attention (causal). Prints one JSON line like `rezero bench --json`'s
tokens_per_second.

  python3 launch/bench-pytorch.py --layers 6 --d-model 256 --heads 4 --seq-len 256 --batch-size 16 --threads 2
  python3 launch/bench-pytorch.py ... --ddp 2        # 2 processes × 1 thread (gloo all-reduce)

Needs torch (pip install torch); launch/bench runs it when torch imports.
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Layer(nn.Module):
    """ReZero: h = x + α·Attn(x); y = h + α·FFN(h). Pre-norm: h = x + Attn(LN(x)); y = h + FFN(LN(h))."""

    def __init__(self, d, heads, ff, prenorm, gelu):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.fc1 = nn.Linear(d, ff * d)
        self.fc2 = nn.Linear(ff * d, d)
        self.activation = (lambda z: F.gelu(z, approximate="tanh")) if gelu else F.relu
        if prenorm:
            self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.gate = 1.0
        else:
            self.norm1 = self.norm2 = nn.Identity()
            self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        h = x + self.gate * self.proj(a)
        return h + self.gate * self.fc2(self.activation(self.fc1(self.norm2(h))))


class Model(nn.Module):
    def __init__(self, a):
        super().__init__()
        prenorm, gelu = a.variant == "prenorm", a.activation == "gelu"
        self.tokens = nn.Embedding(256, a.d_model)
        self.positions = nn.Embedding(a.seq_len, a.d_model)
        self.layers = nn.ModuleList(Layer(a.d_model, a.heads, a.ff_mult, prenorm, gelu) for _ in range(a.layers))
        self.final = nn.LayerNorm(a.d_model) if prenorm else nn.Identity()
        self.head = nn.Linear(a.d_model, 256)

    def forward(self, x, y):
        h = self.tokens(x) + self.positions(torch.arange(x.shape[1]))
        for layer in self.layers:
            h = layer(h)
        return F.cross_entropy(self.head(self.final(h)).view(-1, 256), y.view(-1))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ff-mult", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--variant", choices=["rezero", "prenorm"], default="rezero")
    p.add_argument("--activation", choices=["relu", "gelu"], default="relu")
    p.add_argument("--batch-size", type=int, default=16, help="global batch in sequences")
    p.add_argument("--steps", type=int, default=10, help="measured steps")
    p.add_argument("--warmup-steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads per process")
    p.add_argument("--ddp", type=int, default=1, help="processes (DistributedDataParallel over gloo)")
    a = p.parse_args()
    if a.ddp > 1:
        import torch.multiprocessing as mp
        mp.start_processes(run, args=(a,), nprocs=a.ddp, start_method="fork")
    else:
        run(0, a)


def run(rank, a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = Model(a)
    if a.ddp > 1:
        import torch.distributed as dist
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29517")
        dist.init_process_group("gloo", rank=rank, world_size=a.ddp)
        model = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    share = a.batch_size // a.ddp
    x = torch.randint(0, 256, (share, a.seq_len))
    y = torch.randint(0, 256, (share, a.seq_len))

    def step():
        optimizer.zero_grad(set_to_none=True)
        model(x, y).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    for _ in range(a.warmup_steps):
        step()
    if a.ddp > 1:
        torch.distributed.barrier()
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    if a.ddp > 1:
        torch.distributed.barrier()
    seconds = (time.perf_counter() - start) / a.steps
    if rank == 0:
        print(json.dumps({"torch": torch.__version__, "processes": a.ddp, "threads_per_process": a.threads,
                          "step_seconds": seconds, "tokens_per_second": a.batch_size * a.seq_len / seconds}))
    if a.ddp > 1:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
