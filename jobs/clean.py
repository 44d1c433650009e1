"""`ray job submit ... -- python jobs/clean.py OUT [flags]`: actions, summary and HTML report.
Flags are those of `facesieve clean`; no logic lives here."""

import sys

from facesieve.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["clean", *sys.argv[1:], "--ray-address", "auto"]))
