"""Disjoint sets over 0..n-1, for grouping what the rules link pairwise (copies, split labels)."""

from __future__ import annotations

import numpy as np


class UnionFind:
    """Union-find with path halving; ``find`` returns a set's representative."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = int(self.parent[a])
        return a

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)
