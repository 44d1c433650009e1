"""Identities from the kNN graph: HDBSCAN built on the index's neighbours, not on raw vectors."""
