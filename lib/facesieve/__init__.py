"""facesieve: find what is wrong in large face-image datasets.

The package is organised by concern: ``storage`` (local and S3 bytes), ``sources`` (input layouts
and shards), ``faces`` (decode, detect, align, embed), ``runner`` (per-shard execution, locally or
on Ray), ``schema`` (the Parquet contracts) and ``cli``.
"""

__version__ = "0.1.0"
