"""The work-unit contract: what every step declares, and the markers that prove units done.

This package sits at the bottom of the layers (beside storage, schema and config): stages
import it to declare their steps, the executor in ``facesieve.runner`` imports it to run them.
docs/ARCHITECTURE.md describes the contract.
"""

from facesieve.work.contract import Resources, Step, Unit, UnitOutput, digest
from facesieve.work.markers import Marker, read_markers, write_marker

__all__ = [
    "Marker",
    "Resources",
    "Step",
    "Unit",
    "UnitOutput",
    "digest",
    "read_markers",
    "write_marker",
]
