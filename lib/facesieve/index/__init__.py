"""The sharded IVF-PQ index over OUT/faces, 1:N search with exact re-ranking, and the kNN graph."""
