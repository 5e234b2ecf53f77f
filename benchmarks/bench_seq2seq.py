"""What training the attention seq2seq costs, and what vectorising TimeAttention saves.

    .venv/bin/python -m pytest benchmarks/bench_seq2seq.py --benchmark-enable

- ``test_attention_seq2seq_training_step``: one forward + backward of ``AttentionSeq2seq`` at the
  book's date-task size (N=128, Te=29, Td=10, V=59, D=16, H=256, float32), the unit of a
  training epoch (45,000 questions are 352 such steps, plus the optimizer).
- ``test_time_attention``: forward + backward of ``TimeAttention`` (two batched matrix products
  per direction) against the book's loop of one ``Attention`` per decoder step, on the same data
  at the same size; the table's ``time-attention`` group gives their ratio.

Benchmarks are disabled by default (``--benchmark-disable`` in ``pyproject.toml``: each body runs
once, as the CI smoke test does), hence ``--benchmark-enable`` above.
"""

from __future__ import annotations

import numpy as np
import pytest

from layers import Attention, AttentionSeq2seq, TimeAttention

N, Te, Td, V, D, H = 128, 29, 10, 59, 16, 256


def test_attention_seq2seq_training_step(benchmark):
    rng = np.random.default_rng(0)
    model = AttentionSeq2seq(V, D, H, rng=rng)
    xs, ts = rng.integers(0, V, (N, Te)), rng.integers(0, V, (N, Td + 1))

    def step():
        loss = model.forward(xs, ts)
        model.backward()
        return loss

    benchmark.group = "attention-seq2seq"
    benchmark.extra_info.update(N=N, Te=Te, Td=Td, V=V, D=D, H=H, dtype="float32")
    loss = benchmark(step)
    assert np.isfinite(loss) and loss.dtype == np.float32


def _vectorised(hs_enc, hs_dec, dcs):
    layer = TimeAttention()
    cs = layer.forward(hs_enc, hs_dec)
    return (cs, *layer.backward(dcs))


def _loop(hs_enc, hs_dec, dcs):
    """The book's TimeAttention: one Attention per decoder step, gradients summed over steps."""
    steps = [Attention() for _ in range(hs_dec.shape[1])]
    cs = np.empty_like(hs_dec)
    for t, layer in enumerate(steps):
        cs[:, t] = layer.forward(hs_enc, hs_dec[:, t])
    dhs_enc, dhs_dec = np.zeros_like(hs_enc), np.empty_like(hs_dec)
    for t, layer in enumerate(steps):
        dhs, dh = layer.backward(dcs[:, t])
        dhs_enc += dhs
        dhs_dec[:, t] = dh
    return cs, dhs_enc, dhs_dec


@pytest.mark.parametrize("impl", [_vectorised, _loop], ids=["vectorised", "loop"])
def test_time_attention(benchmark, impl):
    rng = np.random.default_rng(1)
    hs_enc = np.tanh(rng.standard_normal((N, Te, H))).astype(np.float32)
    hs_dec = np.tanh(rng.standard_normal((N, Td, H))).astype(np.float32)
    dcs = rng.standard_normal((N, Td, H)).astype(np.float32)

    benchmark.group = "time-attention"
    benchmark.extra_info.update(N=N, Te=Te, Td=Td, H=H, dtype="float32")
    result = benchmark(impl, hs_enc, hs_dec, dcs)
    for ours, book in zip(result, _loop(hs_enc, hs_dec, dcs), strict=True):
        # float32 sums over Te=29 terms of order 1, in another order: a few ulps of the terms
        np.testing.assert_allclose(ours, book, rtol=1e-4, atol=1e-4)
