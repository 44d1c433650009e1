"""`ray job submit ... -- python jobs/cluster.py OUT [flags]`: identities from the kNN graph.
One unit on one Ray worker (the graph of a million faces fits one machine). Flags are those of
`facesieve cluster`; no logic lives here."""

import sys

from facesieve.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["cluster", *sys.argv[1:], "--ray-address", "auto"]))
