#!/usr/bin/env python3
"""An independent reference for `rezero eval`, written from the README alone (its checkpoint
format, data split, evaluation windows and "The forward pass, exactly") with numpy and nothing
else: it shares no code with the Swift implementation, so agreement checks the file format, the
tensor names and the forward pass against a second implementation.

    reference_eval.py CHECKPOINT [--data FILE] [--split valid] [--bytes N] [--eval-context C ...]

prints {"eval_context": C, "bits_per_byte": ..., "bytes_scored": ...} as a line of JSON per eval
context given. Computes in float64 from the stored float32 values.
"""
import argparse
import json
import struct

import numpy as np


def read_checkpoint(path):
    """The config (metadata `config`, JSON) and the model's tensors (not the optimizer's moments)."""
    with open(path, "rb") as f:
        raw = f.read()
    (header_length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + header_length])
    metadata = header.pop("__metadata__")
    data = raw[8 + header_length:]
    tensors = {}
    for name, entry in header.items():
        if name.startswith("optim."):
            continue
        assert entry["dtype"] == "F32", (name, entry["dtype"])
        begin, end = entry["data_offsets"]
        values = np.frombuffer(data[begin:end], dtype="<f4").reshape(entry["shape"])
        tensors[name] = values.astype(np.float64)
    return json.loads(metadata["config"]), tensors


def split_range(split, n):
    train_end, valid_end = n * 90 // 100, n * 95 // 100
    return {"train": (0, train_end), "valid": (train_end, valid_end), "test": (valid_end, n)}[split]


def windows(a, e, sequence, context):
    """(start, length, first scored position) of every evaluation window over bytes [a, e)."""
    out = []
    s, first = a, 0
    while True:
        n = min(sequence, e - 1 - s)
        out.append((s, n, first))
        end = s + n
        if end >= e - 1:  # byte e-1, predicted by position n-1, has been scored
            return out
        s, first = end - context, context


def linear(x, w, b):
    return x @ w.T + b


def layer_norm(x, p, name):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * p[name + ".weight"] + p[name + ".bias"]


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    ez = np.exp(z)
    return ez / ez.sum(axis=-1, keepdims=True)


def attention(x, p, prefix, heads):
    n, d = x.shape
    z = linear(x, p[prefix + "qkv.weight"], p[prefix + "qkv.bias"])
    q, k, v = z[:, :d], z[:, d:2 * d], z[:, 2 * d:]
    e = d // heads
    future = np.triu(np.ones((n, n), dtype=bool), k=1)
    o = np.empty((n, d))
    for h in range(heads):
        cols = slice(h * e, (h + 1) * e)
        scores = q[:, cols] @ k[:, cols].T / np.sqrt(e)
        scores[future] = -np.inf
        o[:, cols] = softmax(scores) @ v[:, cols]
    return linear(o, p[prefix + "proj.weight"], p[prefix + "proj.bias"])


def feed_forward(x, p, prefix, activation):
    z = linear(x, p[prefix + "fc1.weight"], p[prefix + "fc1.bias"])
    if activation == "relu":
        a = np.maximum(0, z)
    elif activation == "gelu":
        a = 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z ** 3)))
    else:
        raise ValueError("unknown activation " + activation)
    return linear(a, p[prefix + "fc2.weight"], p[prefix + "fc2.bias"])


def log_probabilities(window, p, model):
    """ln p_t(·) for every position t of the window: [n, 256]."""
    variant = model["variant"]
    x = p["token_embedding.weight"][window] + p["position_embedding.weight"][:len(window)]
    for l in range(model["layers"]):
        sublayers = [
            (lambda y, pre=f"layers.{l}.attn.": attention(y, p, pre, model["heads"]), f"layers.{l}.norm1"),
            (lambda y, pre=f"layers.{l}.ffn.": feed_forward(y, p, pre, model["activation"]), f"layers.{l}.norm2"),
        ]
        for f, norm in sublayers:
            if variant in ("rezero", "rezero-alpha1"):
                x = x + p[f"layers.{l}.alpha"][0] * f(x)
            elif variant == "postnorm":
                x = layer_norm(x + f(x), p, norm)
            elif variant in ("prenorm", "gpt2norm"):
                x = x + f(layer_norm(x, p, norm))
            else:
                raise ValueError("unknown variant " + variant)
    if variant in ("prenorm", "gpt2norm"):
        x = layer_norm(x, p, "final_norm")
    logits = linear(x, p["head.weight"], p["head.bias"])
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--data", help="corpus file (default: the checkpoint's config `data`)")
    parser.add_argument("--split", default="valid", choices=["train", "valid", "test"])
    parser.add_argument("--bytes", type=int, default=0, help="only the split's first N bytes; 0 = all")
    parser.add_argument("--eval-context", type=int, nargs="+", default=[0])
    args = parser.parse_args()

    config, tensors = read_checkpoint(args.checkpoint)
    model = config["model"]
    path = args.data or config.get("data")
    if path is None:
        parser.error("the checkpoint was trained on the built-in corpus: pass --data")
    with open(path, "rb") as f:
        corpus = np.frombuffer(f.read(), dtype=np.uint8)
    a, e = split_range(args.split, len(corpus))
    if args.bytes > 0:
        e = min(e, a + args.bytes)

    for context in args.eval_context:
        if not 0 <= context < model["seq_len"]:
            parser.error(f"--eval-context {context}: must be in [0, seq_len)")
        nats, scored = 0.0, 0
        for s, n, first in windows(a, e, model["seq_len"], context):
            logp = log_probabilities(corpus[s:s + n].astype(np.int64), tensors, model)
            targets = corpus[s + 1:s + n + 1].astype(np.int64)
            nats -= logp[np.arange(first, n), targets[first:]].sum()
            scored += n - first
        print(json.dumps({"eval_context": context, "bits_per_byte": nats / scored / np.log(2), "bytes_scored": scored}))


if __name__ == "__main__":
    main()
