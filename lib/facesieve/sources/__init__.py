"""Input: listing and layouts, the ledger of shards, and the records inside a shard."""

from facesieve.sources.ledger import Ledger, LedgerChanges, read_ledger, update_ledger, write_ledger
from facesieve.sources.listing import Listing, detect_layout, list_input
from facesieve.sources.records import Record, ShardWork, iter_records

__all__ = [
    "Ledger",
    "LedgerChanges",
    "Listing",
    "Record",
    "ShardWork",
    "detect_layout",
    "iter_records",
    "list_input",
    "read_ledger",
    "update_ledger",
    "write_ledger",
]
