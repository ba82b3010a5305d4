"""Train a tiny character-level transformer on the Zen of Python (``import this``).

One pre-norm block: token and position embeddings, causal self-attention
(``F.scaled_dot_product_attention``), LayerNorm, a GELU feed-forward layer and residual
connections; the loss is the cross entropy of the next character. Runs on any backend:

    python examples/char_transformer.py [--backend torch] [--steps 300]
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import io
import random
import time

import agrad
import agrad.functions as F
import agrad.layers as L
from agrad import Model, optimizers


def zen_of_python() -> str:
    """The text of ``import this``, which ships with every Python (without printing it)."""
    with contextlib.redirect_stdout(io.StringIO()):
        import this
    return codecs.decode(this.s, "rot13")


class CharTransformer(Model):
    def __init__(self, vocab: int, context: int, width: int) -> None:
        super().__init__()
        self.token = L.Embedding(vocab, width)
        self.position = L.Embedding(context, width)
        self.norm1 = L.LayerNorm(width)
        self.qkv = L.Linear(3 * width)
        self.proj = L.Linear(width)
        self.norm2 = L.LayerNorm(width)
        self.up = L.Linear(4 * width)
        self.down = L.Linear(width)
        self.norm3 = L.LayerNorm(width)
        self.head = L.Linear(vocab)
        self.width = width

    def forward(self, ids):
        batch, length = ids.shape
        width = self.width
        backend = agrad.current_backend()
        positions = backend.asarray(list(range(length)), dtype="int64")
        h = self.token(F.reshape(ids, (batch * length,)))
        h = F.reshape(h, (batch, length, width)) + self.position(positions)

        def dense(layer, x, out):  # a Linear layer over the last axis of (batch, length, .)
            y = layer(F.reshape(x, (batch * length, x.shape[-1])))
            return F.reshape(y, (batch, length, out))

        qkv = dense(self.qkv, self.norm1(h), 3 * width)
        q, k, v = qkv[:, :, :width], qkv[:, :, width : 2 * width], qkv[:, :, 2 * width :]
        h = h + dense(self.proj, F.scaled_dot_product_attention(q, k, v, is_causal=True), width)
        h = h + dense(self.down, F.gelu(dense(self.up, self.norm2(h), 4 * width)), width)
        return self.head(F.reshape(self.norm3(h), (batch * length, width)))


def train(
    steps: int = 300,
    *,
    batch: int = 16,
    context: int = 32,
    width: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    log_every: int = 0,
) -> list[float]:
    """Train on the current backend; returns the loss of every step."""
    text = zen_of_python()
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = [index[c] for c in text]
    agrad.seed(seed)
    draw = random.Random(seed)  # the windows: the same on every backend
    model = CharTransformer(len(chars), context, width)
    optimizer = optimizers.Adam(alpha=lr).setup(model)
    backend = agrad.current_backend()
    losses = []
    for step in range(1, steps + 1):
        starts = [draw.randrange(len(ids) - context - 1) for _ in range(batch)]
        x = backend.asarray([ids[s : s + context] for s in starts], dtype="int64")
        t = backend.asarray([ids[s + 1 : s + context + 1] for s in starts], dtype="int64")
        loss = F.softmax_cross_entropy(model(x), F.reshape(t, (batch * context,)))
        model.cleargrads()
        loss.backward()
        optimizer.update()
        losses.append(float(loss.data))
        if log_every and (step % log_every == 0 or step == steps):
            print(f"step {step:4d}  loss {losses[-1]:.4f}")
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None, help="numpy, torch, jax, ...")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    if args.backend:
        agrad.use(args.backend)
    start = time.perf_counter()
    losses = train(args.steps, log_every=max(1, args.steps // 10))
    name = agrad.current_backend().name
    print(
        f"{args.steps} steps on {name} in {time.perf_counter() - start:.1f} s, "
        f"final loss {losses[-1]:.4f}"
    )


if __name__ == "__main__":
    main()
