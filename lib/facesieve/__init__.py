"""facesieve: find what is wrong in large face-image datasets.

The package is organised by concern: ``storage`` (local and S3 bytes), ``sources`` (input layouts
and shards), ``faces`` (decode, detect, align, embed), ``runner`` (per-shard execution, locally or
on Ray), ``schema`` (the Parquet contracts), ``api`` (the Python API) and ``cli``.

The API's names are importable from here (``facesieve.Embedder``, ``facesieve.run``,
``facesieve.open_run``, ...; docs/API.md). They load on first use, so that ``import facesieve``
stays cheap for workers and for the CLI, which need none of them.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = ("Embedded", "Embedder", "RunOutputs", "embed", "embeddings", "open_run", "run")
_CONFIG = ("Config", "load_config")
__all__ = [*_API, *_CONFIG, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        from facesieve import api

        return getattr(api, name)
    if name in _CONFIG:
        from facesieve import config

        return getattr(config, name)
    raise AttributeError(f"module 'facesieve' has no attribute {name!r}")
