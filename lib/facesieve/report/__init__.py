"""The human side of the cleaning step: face thumbnails and the self-contained HTML report."""
