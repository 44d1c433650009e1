"""`ray job submit ... -- python jobs/nightly.py INPUT --out OUT [flags]`: every stage, redoing
only what is new or changed, on the cluster the job was submitted to. Flags are those of
`facesieve run`; no logic lives here."""

import sys

from facesieve.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:], "--ray-address", "auto"]))
