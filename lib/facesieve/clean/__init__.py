"""``facesieve clean``: rules that turn embeddings, clusters and labels into per-image actions."""
