"""Does ``facesieve apply`` stream WebDataset shards? Memory and time on one large tar.

Builds one tar from the demo photos (``facesieve demo``'s data): every sample is KEY.jpg +
KEY.json + a KEY.bin of ``--member-mib`` random bytes (a stand-in for the extra members real
shards carry), runs the pipeline on it in-process, then ``facesieve apply`` in a child process,
twice (the second finds nothing to do). Prints the tar's size, each apply's wall time and peak
resident memory, and the peak of a child that only imports what apply imports: streaming shows
as a peak far below the tar's size.

    python bench/apply_memory.py [--samples 40] [--member-mib 8] [--work DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

_PEAK = """
import runpy, sys
try:
    {body}
finally:
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
    open({out!r}, "w").write(hwm)
"""


def child(body: str, work: Path) -> tuple[float, float]:
    """(seconds, peak resident MiB) of a fresh Python running ``body``: VmHWM read by the
    child itself (a fork's ru_maxrss would count the parent's memory before exec)."""
    out = work / "peak.txt"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", _PEAK.format(body=body, out=str(out))], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - started, int(out.read_text()) / 1024  # KiB


def build_tar(path: Path, samples: int, member_mib: int) -> None:
    from facesieve.cli.demo import build_demo_data

    data = build_demo_data(path.parent.parent / "demo")
    images = sorted(data.rglob("*.jpg"))[:samples]
    blob = os.urandom(member_mib << 20)
    with tarfile.open(path, "w") as tar:
        for i, img in enumerate(images):
            label = json.dumps({"label": img.parent.name}).encode()
            for ext, payload in ((".jpg", img.read_bytes()), (".json", label), (".bin", blob)):
                info = tarfile.TarInfo(f"{i:05d}{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--member-mib", type=int, default=8)
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="apply-bench-"))
    (work / "in").mkdir(parents=True, exist_ok=True)
    tar = work / "in" / "big-000.tar"
    build_tar(tar, args.samples, args.member_mib)

    from facesieve.config import Config
    from facesieve.runner.pipeline import run_pipeline

    cfg = Config().with_overrides("run", runner="local", device="cpu").validate()
    run = run_pipeline(str(work / "in"), str(work / "out"), cfg, show_progress=False)
    argv = ["facesieve", "apply", str(work / "out"), "--to", str(work / "dest"), "-q"]
    apply = f"sys.argv = {argv!r}; runpy.run_module('facesieve.cli.main', run_name='__main__')"
    first_s, first_mib = child(apply, work)
    again_s, again_mib = child(apply, work)
    _, base_mib = child("import facesieve.apply.run, facesieve.cli.main", work)
    print(json.dumps({
        "tar_mib": round(tar.stat().st_size / 2**20, 1),
        "samples": args.samples,
        "member_mib": args.member_mib,
        "actions": run.info["report"]["actions"],
        "dest_tar_mib": round((work / "dest" / tar.name).stat().st_size / 2**20, 1),
        "apply_s": round(first_s, 2),
        "apply_peak_rss_mib": round(first_mib, 1),
        "rerun_s": round(again_s, 2),
        "rerun_peak_rss_mib": round(again_mib, 1),
        "imports_only_peak_rss_mib": round(base_mib, 1),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
