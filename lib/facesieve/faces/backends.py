"""One inference interface, two engines: onnxruntime on CPU, torch (fp16) on CUDA.

onnxruntime runs these small convolutional models several times faster than torch on a CPU
(measured in ../shared/ENVIRONMENT.md and bench/backend_speed.py), while on a GPU torch with fp16
and large batches is the natural engine. Both execute the same ONNX weights, so switching device
changes speed, not results (tests/integration/test_backend_parity.py).
"""

from __future__ import annotations

import logging
import os
from typing import Protocol

import numpy as np
import onnx

from facesieve.errors import ConfigError, ModelError

log = logging.getLogger(__name__)


class Backend(Protocol):
    """Runs a model on an NCHW float32 batch and returns its outputs as float32 arrays."""

    name: str

    def run(self, batch: np.ndarray) -> list[np.ndarray]: ...


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when torch sees a GPU, else ``cpu``."""
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda, not {device!r}")
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise ConfigError("--device cuda was asked for but torch sees no CUDA GPU")
    return device


def _relaxed_model_bytes(path: str) -> bytes:
    """The model with a symbolic batch dimension on every output.

    The bundled recognizer declares a fixed [1, 512] output; onnxruntime then logs a warning on
    every batch larger than one. The weights are untouched.
    """
    try:
        model = onnx.load(path)
    except Exception as exc:
        raise ModelError(f"cannot read ONNX model {path}: {exc}") from exc
    for out in model.graph.output:
        dims = out.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"
    return model.SerializeToString()


class OrtBackend:
    """onnxruntime on the CPU; threads are set per worker so Ray actors do not oversubscribe."""

    name = "onnxruntime-cpu"

    def __init__(self, path: str, threads: int = 0, spin: bool = False) -> None:
        """``spin``: onnxruntime's default, threads busy-wait between calls. Off here: the embed
        step's preprocessing threads share the cores, and spinning took them CPU (44 against
        48-55 CPU ms per CelebA photo in-process, docs/BENCHMARKS.md); results are the same."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or (os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        if not spin:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                _relaxed_model_bytes(path), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelError(f"onnxruntime cannot load {path}: {exc}") from exc
        self._input = self._session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self._session.run(None, {self._input: np.ascontiguousarray(batch, np.float32)})


class TorchBackend:
    """The ONNX graph interpreted by torch, fp16 on CUDA (fp32 when run on the CPU for tests)."""

    def __init__(
        self,
        path: str,
        device: str = "cuda",
        half: bool | None = None,
        threads: int = 0,
        batch: int = 0,
    ) -> None:
        import torch

        from facesieve.faces.onnx_torch import load_onnx_as_torch

        self._torch = torch
        self.batch = batch
        if threads > 0:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.half = (self.device.type == "cuda") if half is None else half
        module = load_onnx_as_torch(path).to(self.device)
        self._module = module.half() if self.half else module
        self.name = f"torch-{self.device.type}{'-fp16' if self.half else ''}"
        if self.device.type == "cuda":
            # Autotuning pays off only for long runs; FACESIEVE_CUDNN_BENCHMARK=1 turns it on
            # (docs/OPERATIONS.md has the measured trade-off).
            torch.backends.cudnn.benchmark = os.environ.get("FACESIEVE_CUDNN_BENCHMARK", "0") == "1"

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run on a batch padded to the full batch size (``batch``; else to a power of two).

        One shape per input size means one choice of GPU kernels, so a face's fp16 result does
        not depend on how many faces share its batch, and a nightly rerun that embeds a few files
        in small batches meets no new shape (each costs seconds of kernel loading, and autotuning
        with ``cudnn.benchmark``). Measured on an H100 (docs/BENCHMARKS.md, "Nightly reruns"):
        rerun embed 11.5 s -> 1.1 s for 18 images; largest difference from a fresh run's
        embeddings 2.4e-3 -> 1.9e-4.
        """
        torch = self._torch
        n = len(batch)
        whole = -(-n // self.batch) * self.batch if self.batch else 0
        padded = whole or 1 << max(n - 1, 0).bit_length()
        if padded != n:
            batch = np.concatenate([batch, np.zeros((padded - n, *batch.shape[1:]), batch.dtype)])
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, np.float32))
            x = x.to(self.device, non_blocking=True)
            if self.half:
                x = x.half()
            outs = self._module(x)
            return [o[:n].float().cpu().numpy() for o in outs]


def make_backend(path: str, device: str, threads: int = 0, batch: int = 0) -> Backend:
    """The engine for ``device`` (already resolved to ``cpu`` or ``cuda``); on CUDA every call
    is padded to ``batch`` rows (onnxruntime on the CPU gives the same bits at any batch)."""
    if device == "cuda":
        return TorchBackend(path, "cuda", threads=threads, batch=batch)
    if device == "cpu":
        return OrtBackend(path, threads)
    raise ConfigError(f"unknown device {device!r}")
