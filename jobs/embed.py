"""`ray job submit ... -- python jobs/embed.py INPUT --out OUT [flags]`: the embed stage on the
cluster the job was submitted to. Flags are those of `facesieve embed`; no logic lives here."""

import sys

from facesieve.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["embed", *sys.argv[1:], "--ray-address", "auto"]))
