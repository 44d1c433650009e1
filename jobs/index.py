"""`ray job submit ... -- python jobs/index.py OUT [flags]`: the index stage (and kNN graph) on the
cluster the job was submitted to. Flags are those of `facesieve index`; no logic lives here."""

import sys

from facesieve.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["index", *sys.argv[1:], "--ray-address", "auto"]))
