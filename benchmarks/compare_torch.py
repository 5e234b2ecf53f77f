"""Side by side: ``gradcheck.check_layer`` against ``torch.autograd.gradcheck``, in one run.

The same three functions (TimeLSTM, TimeAttention, the AttentionSeq2seq loss) on the same float64
data: our NumPy layers checked with ``check_layer`` in full and fast mode, and float64 torch
functions that take the same weights (and are first shown to give the same outputs to 1e-10)
checked with ``torch.autograd.gradcheck`` in slow and fast mode. Printed per model:

- elements: the numbers checked, counted as torch counts them (every input with
  ``requires_grad``: float inputs, parameters, and the initial state ``h0, c0`` of TimeLSTM);
- median time of each check, per element, and the ratios the README's targets are about;
- bare: ``4n`` forward evaluations of the same layer with no checker around it, the arithmetic a
  full check of ``n`` elements by error-estimated central differences (two steps, two
  evaluations each) cannot avoid;
- ours auto: the default mode, every element in blocks (a handful of forwards per block);
- memory: the tracemalloc peak of each check beyond the layer itself, in copies of the layer's
  parameter bytes (and, for reference, the peak of one plain forward and backward).

Run it from the repository root (one thread each, so numpy and torch compete fairly)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/compare_torch.py

``--sizes small`` is a quick run; ``--models lstm`` picks models; ``--clock wall`` times wall
clock instead of this process's CPU time (the default, less disturbed by other processes on a
shared machine). Without torch the torch columns are left out.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import bench_check
import numpy as np

import gradcheck

try:
    import torch
except ImportError:  # torch is optional: the table then shows our columns only
    torch = None

__all__ = ["Model", "build", "main", "measure"]


@dataclass
class Model:
    """One function to check both ways.

    ``layer`` and ``inputs`` are what ``check_layer`` gets; ``torch_fn`` and ``torch_inputs``
    what ``torch.autograd.gradcheck`` gets: the same values, and the tensors with
    ``requires_grad`` are the checked elements (``elements`` counts them).
    """

    name: str
    dims: dict[str, int]
    layer: Any
    inputs: tuple[Any, ...]
    torch_fn: Callable[..., Any] | None
    torch_inputs: tuple[Any, ...]
    elements: int

    def forward(self) -> Any:
        return self.layer.forward(*self.inputs)

    @property
    def param_bytes(self) -> int:
        return sum(p.nbytes for p in self.layer.params)


# --- the torch twins of our layers (float64, same weights, book gate order f, g, i, o) ---------


def torch_lstm(xs, Wx, Wh, b, h, c):
    """hs (N, T, H) of an LSTM over xs (N, T, D) from state (h, c); gates f, g, i, o."""
    H = Wh.shape[0]
    xw = xs @ Wx + b  # (N, T, 4H): the input projection for every step at once
    hs = []
    for t in range(xs.shape[1]):
        a = xw[:, t] + h @ Wh
        f = torch.sigmoid(a[:, :H])
        g = torch.tanh(a[:, H : 2 * H])
        i = torch.sigmoid(a[:, 2 * H : 3 * H])
        o = torch.sigmoid(a[:, 3 * H :])
        c = f * c + g * i
        h = o * torch.tanh(c)
        hs.append(h)
    return torch.stack(hs, dim=1)


def torch_attention(hs_enc, hs_dec):
    """cs (N, Td, H): each decoder state's softmax-weighted sum of the encoder states."""
    a = torch.softmax(hs_dec @ hs_enc.transpose(1, 2), dim=-1)  # (N, Td, Te)
    return a @ hs_enc


def torch_seq2seq_loss(
    xs, ts, enc_embed, enc_Wx, enc_Wh, enc_b, dec_embed, dec_Wx, dec_Wh, dec_b, affine_W, affine_b
):
    """Mean cross-entropy of the attention seq2seq: decoder input ts[:, :-1], target ts[:, 1:]."""
    N, H = xs.shape[0], enc_Wh.shape[0]
    zeros = torch.zeros(N, H, dtype=enc_Wh.dtype)
    enc_hs = torch_lstm(enc_embed[xs], enc_Wx, enc_Wh, enc_b, zeros, zeros)
    dec_hs = torch_lstm(dec_embed[ts[:, :-1]], dec_Wx, dec_Wh, dec_b, enc_hs[:, -1], zeros)
    cs = torch_attention(enc_hs, dec_hs)
    score = torch.cat([cs, dec_hs], dim=2) @ affine_W + affine_b  # (N, Td, V)
    return torch.nn.functional.cross_entropy(
        score.reshape(-1, score.shape[-1]), ts[:, 1:].reshape(-1)
    )


# --- building the same data for both sides --------------------------------------------------


def build(name: str, rng: np.random.Generator, **dims: int) -> Model:
    """``bench_check.build``'s layer and inputs, and the torch twin with the same values."""
    layer, inputs = bench_check.build(name, rng, **dims)
    if name == "lstm":
        arrays = (inputs[0], *layer.params, layer.h, layer.c)  # the state the layer holds
        fn = torch_lstm
    elif name == "attention":
        arrays, fn = inputs, torch_attention
    else:
        arrays = [layer.params[i] for i in _seq2seq_param_order(layer)]
        fn = None
        if torch is not None:
            xs, ts = torch.tensor(inputs[0]), torch.tensor(inputs[1])

            def fn(*params):
                return torch_seq2seq_loss(xs, ts, *params)

    elements = sum(a.size for a in arrays)
    if torch is None:
        return Model(name, dims, layer, inputs, None, (), elements)
    tensors = tuple(torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays)
    return Model(name, dims, layer, inputs, fn, tensors, elements)


#: The torch function's argument order, by our parameters' dotted names (ends of them).
_SEQ2SEQ_ORDER = (
    "encoder.embed.W",
    "encoder.lstm.Wx",
    "encoder.lstm.Wh",
    "encoder.lstm.b",
    "decoder.embed.W",
    "decoder.lstm.Wx",
    "decoder.lstm.Wh",
    "decoder.lstm.b",
    "decoder.affine.W",
    "decoder.affine.b",
)


def _seq2seq_param_order(model: Any) -> list[int]:
    names = list(model.param_names)
    order = []
    for want in _SEQ2SEQ_ORDER:
        part, _, leaf = want.rpartition(".")
        side = part.split(".")[0]
        kind = part.split(".")[1]
        hits = [
            i
            for i, n in enumerate(names)
            if n.split(".")[0] == side and kind in n and n.rsplit(".", 1)[-1] == leaf
        ]
        if len(hits) != 1:
            raise ValueError(f"cannot map {want!r} onto param_names {names}")
        order.append(hits[0])
    return order


def _same_outputs(model: Model) -> float:
    """Largest difference between our layer's output and the torch twin's (should be ~1e-15)."""
    state = getattr(model.layer, "h", None), getattr(model.layer, "c", None)
    ours = np.asarray(model.forward())
    if state[0] is not None:  # put back the state that forward moved on
        model.layer.set_state(*state)
    with torch.no_grad():
        theirs = model.torch_fn(*model.torch_inputs).numpy()
    return float(np.max(np.abs(ours - theirs)))


# --- measuring --------------------------------------------------------------------------------


def _clock(kind: str) -> Callable[[], float]:
    return time.process_time if kind == "cpu" else time.perf_counter


def _medians(
    runs: dict[str, Callable[[], Any]], repeat: int, clock: Callable[[], float]
) -> dict[str, float]:
    """Median time of each run; the runs take turns, so a change of load hits them all alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, fn in runs.items():
            gc.collect()
            start = clock()
            fn()
            times[name].append(clock() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _peak(fn: Callable[[], Any]) -> int:
    """Peak bytes allocated while ``fn`` runs, beyond what was allocated before."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def measure(
    model: Model, *, repeat: int, clock: str = "cpu", memory: bool = True, torch_slow: bool = True
) -> dict[str, Any]:
    """Times (median of ``repeat``) and peaks of every check of ``model``; a dict of results."""
    n = model.elements
    out: dict[str, Any] = {"model": model.name, "dims": model.dims, "elements": n}
    if model.torch_fn is not None:
        out["torch_max_diff"] = _same_outputs(model)

    def ours(mode):
        return lambda: gradcheck.check_layer(model.layer, *model.inputs, mode=mode, seed=0)

    def theirs(fast):
        return lambda: torch.autograd.gradcheck(model.torch_fn, model.torch_inputs, fast_mode=fast)

    def bare():
        for _ in range(4 * n):
            model.forward()

    full, auto, fast = ours("full")(), ours("auto")(), ours("fast")()
    for report in (full, auto, fast):
        assert report.passed, str(report)
    out["ours_checked"] = sum(
        int(np.prod(e.shape)) for e in full.gradients if e.status != "skipped"
    )
    out["ours_full_calls"] = (full.forward_calls, full.backward_calls)
    out["ours_auto_calls"] = (auto.forward_calls, auto.backward_calls)
    out["ours_fast_calls"] = (fast.forward_calls, fast.backward_calls)
    slow_runs = {"bare": bare, "ours_full": ours("full")}
    fast_runs = {"ours_auto": ours("auto"), "ours_fast": ours("fast")}
    if model.torch_fn is not None:
        assert theirs(True)() and theirs(False)()  # also warms torch up
        fast_runs["torch_fast"] = theirs(True)
        if torch_slow:
            slow_runs["torch_slow"] = theirs(False)
    tick = _clock(clock)
    out |= _medians(slow_runs, repeat, tick)
    out |= _medians(fast_runs, max(repeat, 11), tick)
    if memory:
        out["param_bytes"] = model.param_bytes
        out["input_bytes"] = sum(a.nbytes for a in model.inputs if a.dtype.kind == "f")

        def step():
            y = model.forward()
            model.layer.backward(np.ones_like(y) if np.ndim(y) else 1)

        out["peak_step"] = _peak(step)
        out["peak_full"] = _peak(ours("full"))
        out["peak_fast"] = _peak(ours("fast"))
    return out


# --- the table --------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:,.1f}"


def _us(seconds: float | None, n: int) -> str:
    return "-" if seconds is None else f"{seconds / n * 1e6:,.1f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def table(results: list[dict[str, Any]], clock: str) -> str:
    """Markdown tables: times, the target ratios, memory."""
    unit = "process CPU" if clock == "cpu" else "wall-clock"
    lines = [
        f"Median {unit} times; elements = numbers checked (inputs with requires_grad).",
        "",
        "| model (sizes) | elements | torch slow ms | torch fast ms | ours full ms | "
        "ours auto ms | ours fast ms | bare 4n fwd ms | ours full µs/elem | torch slow µs/elem |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        dims = " ".join(f"{k}={v}" for k, v in r["dims"].items())
        n = r["elements"]
        lines.append(
            f"| {r['model']} ({dims}) | {n:,} | {_ms(r.get('torch_slow'))} | "
            f"{_ms(r.get('torch_fast'))} | {_ms(r['ours_full'])} | {_ms(r['ours_auto'])} | "
            f"{_ms(r['ours_fast'])} | "
            f"{_ms(r['bare'])} | {_us(r['ours_full'], n)} | {_us(r.get('torch_slow'), n)} |"
        )
    lines += [
        "",
        "| model | torch slow / ours full | torch slow / ours auto | ours full / bare (<= 1.15) | "
        "ours fast / torch fast (<= 1) | fwd, bwd calls full | fwd, bwd calls auto | "
        "fwd, bwd calls fast |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {_ratio(r.get('torch_slow'), r['ours_full'])} | "
            f"{_ratio(r.get('torch_slow'), r['ours_auto'])} | "
            f"{r['ours_full'] / r['bare']:.3f} | {_ratio(r['ours_fast'], r.get('torch_fast'))} | "
            f"{r['ours_full_calls'][0]:,}, {r['ours_full_calls'][1]} | "
            f"{r['ours_auto_calls'][0]:,}, {r['ours_auto_calls'][1]} | "
            f"{r['ours_fast_calls'][0]}, {r['ours_fast_calls'][1]} |"
        )
    if any("peak_full" in r for r in results):
        lines += [
            "",
            "Memory: tracemalloc peaks beyond what was allocated before the call; copies = "
            "bytes / the layer's parameter bytes.",
            "",
            "| model | param KiB | input KiB | peak fwd+bwd KiB | peak full KiB | peak fast KiB | "
            "full / params | (full - fwd+bwd) / params |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in results:
            if "peak_full" not in r:
                continue
            pb = r["param_bytes"]

            def copies(b, pb=pb):
                return f"{b / pb:.2f}" if pb else "no params"

            lines.append(
                f"| {r['model']} | {pb / 1024:,.1f} | {r['input_bytes'] / 1024:,.1f}"
                f" | {r['peak_step'] / 1024:,.1f} | {r['peak_full'] / 1024:,.1f} | "
                f"{r['peak_fast'] / 1024:,.1f} | {copies(r['peak_full'])} | "
                f"{copies(r['peak_full'] - r['peak_step'])} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        choices=list(bench_check.SIZES),
        default="medium",
        help="problem sizes (default: medium)",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        choices=list(bench_check.SIZES["medium"]),
        default=list(bench_check.SIZES["medium"]),
        help="models (default: all three)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="timed runs per check; the median is shown (default: 3)",
    )
    parser.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="process CPU time or wall-clock time (default: cpu)",
    )
    parser.add_argument(
        "--no-memory",
        action="store_true",
        help="skip the tracemalloc runs (default: measure memory)",
    )
    parser.add_argument(
        "--no-torch-slow",
        action="store_true",
        help="skip torch's slow mode, the longest part (default: run it)",
    )
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="print only the versions and the tables, for the docs; progress goes to stderr",
    )
    args = parser.parse_args(argv)
    progress = sys.stderr if args.markdown else sys.stdout
    if args.repeat < 1:
        parser.error(f"--repeat={args.repeat} must be >= 1")
    if torch is not None:
        torch.set_num_threads(1)
    versions = (
        f"numpy {np.__version__}, torch {torch.__version__ if torch else 'not installed'}, "
        f"python {sys.version.split()[0]}; median of {args.repeat}; {args.clock} time"
    )
    print(versions, file=progress, flush=True)
    results = []
    for name in args.models:
        model = build(name, np.random.default_rng(0), **bench_check.SIZES[args.sizes][name])
        result = measure(
            model,
            repeat=args.repeat,
            clock=args.clock,
            memory=not args.no_memory,
            torch_slow=not args.no_torch_slow,
        )
        if "torch_max_diff" in result:
            print(
                f"{name}: torch twin max |diff| = {result['torch_max_diff']:.1e}; ours checked "
                f"{result['ours_checked']:,} of {result['elements']:,} elements",
                file=progress,
                flush=True,
            )
        results.append(result)
    if args.markdown:
        print(f"{versions}; sizes {args.sizes}.\n")
    else:
        print()
    print(table(results, args.clock))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
