"""The sharded IVF-PQ index over OUT/faces, 1:N search with exact re-ranking, and the kNN graph."""

import importlib.util

from facesieve.errors import ConfigError

if importlib.util.find_spec("faiss") is None:
    raise ConfigError(
        "the index needs FAISS: pip install 'facesieve[cpu]' (or 'facesieve[gpu]' on CUDA machines)"
    )
