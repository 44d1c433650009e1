"""``facesieve`` commands: each calls the library and renders its result (parser.py parses).

Exit codes: 0 everything succeeded; 1 some units failed after retries (the others are written,
the global stages after them did not run) or a storage error stopped the run; 2 usage or
configuration error, or another run holds the output root.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from facesieve.cli.parser import build_parser
from facesieve.config import Config, load_config
from facesieve.errors import ConfigError, FacesieveError, LockError, ModelError
from facesieve.redact import install_redaction, redact_text

log = logging.getLogger("facesieve")

# Which flags override which config section (flags a subcommand lacks are simply absent).
_OVERRIDES = {
    "source": ("layout", "shard_size", "follow_external_links"),
    "faces": ("detector", "recognizer", "det_size", "flip", "aligned"),
    "run": ("runner", "ray_address", "device", "workers", "retries", "s3_endpoint"),
    "index": ("memory", "factory", "nprobe", "knn_k", "merge"),
    "cluster": ("min_cluster_size", "min_samples", "mode"),
}


def _config(args: argparse.Namespace) -> Config:
    """Defaults, then --config (unless ``config --defaults``), then each --set, then flags."""
    path = None if getattr(args, "defaults", False) else args.config
    cfg = load_config(path, getattr(args, "set", None) or ())
    for section, names in _OVERRIDES.items():
        cfg = cfg.with_overrides(section, **{n: getattr(args, n, None) for n in names})
    return cfg.validate()


def _setup_logging(args: argparse.Namespace) -> None:
    level = (
        logging.ERROR
        if args.quiet
        else [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    )
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    install_redaction()  # no key, signature or URL password in the log at any verbosity
    sys.excepthook = _redacted_excepthook
    if not args.quiet:  # progress lines are what a nightly job's log should show by default
        logging.getLogger("facesieve.progress").setLevel(min(level, logging.INFO))


def _redacted_excepthook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
    """A bug's traceback still reaches stderr, through the same redaction as the log."""
    import traceback

    sys.stderr.write(redact_text("".join(traceback.format_exception(kind, exc, tb))))


def _emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    sys.stdout.write((json.dumps(data, indent=2) if args.json else text) + "\n")


def _stages(args: argparse.Namespace, command: str, stages: tuple[str, ...]) -> int:
    from facesieve.runner.pipeline import run_command

    result = run_command(
        command,
        args.out,
        _config(args),
        getattr(args, "input", None),
        stages,
        show_progress=False if args.quiet else None,
        accept_removals=getattr(args, "accept_removals", False),
    )
    _emit(args, result.to_dict(), run_text(result.to_dict()))
    return result.exit_code


def run_text(info: dict[str, Any]) -> str:
    """What a command did, for people: one line per stage, then failures and where to look."""
    lines = []
    steps = info.get("steps", {})
    if led := info.get("ledger"):
        lines.append(
            f"input: {led['files_added']} files added, {led['files_changed']} changed, "
            f"{led['files_removed']} removed since the last run"
        )
    if "shards" in info:
        s, t, speed = info["shards"], info["totals"], info["throughput"]
        lines.append(
            f"embed: {s['total']} shards, {s['processed']} processed, {s['skipped']} already "
            f"done, {len(s['failed'])} failed; images {t.get('images', 0)}, faces "
            f"{t.get('faces', 0)}, status {t.get('status', {})}; {speed['images']} images "
            f"embedded at {speed['images_per_s']}/s"
        )
    for name in ("index-fill", "knn", "knn-refresh"):
        if name in steps:
            r = steps[name]
            lines.append(f"{name}: {r['units']} units, {r['processed']} run, {r['skipped']} done")
    same = " (nothing changed: as in the last run)"
    if c := info.get("cluster"):
        ids = ", ".join(f"{k} {v}" for k, v in c.get("ids", {}).items())
        lines.append(
            f"clusters: {c['clusters']} identities, {c['noise']} unclustered faces ({c['mode']}); "
            f"ids: {ids}" + (same if steps.get("cluster", {}).get("processed") == 0 else "")
        )
    if rep := info.get("report"):
        unchanged = steps.get("clean", {}).get("processed") == 0
        lines.append(_clean_text(rep, info["output"].rstrip("/"), same if unchanged else ""))
    if info.get("stopped"):
        lines.append(f"STOPPED: {info['stopped']}")
    lines += [f"FAILED {f['step']} {f['label']}: {f['error']}" for f in info.get("failed", [])]
    return "\n".join(lines)


def cmd_config(args: argparse.Namespace) -> int:
    from facesieve.config_text import config_yaml

    cfg = _config(args)
    if args.json:
        _emit(args, cfg.public_dict(), "")
    else:
        sys.stdout.write(config_yaml(cfg))
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    return _stages(args, "embed", ("embed",))


def cmd_verify(args: argparse.Namespace) -> int:
    from facesieve.faces.engine import FaceEngine
    from facesieve.faces.verify import DEFAULT_THRESHOLD, verify

    cfg = _config(args)
    engine = FaceEngine(cfg.faces, cfg.run.device)
    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    data = []
    for name in (args.image_a, args.image_b):
        try:
            data.append(Path(name).read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read {name}: {exc.strerror}") from exc
    r = verify(engine, data[0], data[1], threshold, (args.image_a, args.image_b), args.face)
    verdict = "same" if r.same_person else "different"
    _emit(
        args,
        {
            "image_a": args.image_a,
            "image_b": args.image_b,
            "cosine": r.cosine,
            "same_person": r.same_person,
            "threshold": r.threshold,
            "faces_a": r.faces_a,
            "faces_b": r.faces_b,
            "face_rule": args.face,
            "face_a": asdict(r.face_a),
            "face_b": asdict(r.face_b),
        },
        f"{verdict} person (cosine {r.cosine:.4f}, threshold {r.threshold}); compared face "
        f"{r.face_a.index} of {r.faces_a} at {r.face_a.bbox} with face {r.face_b.index} of "
        f"{r.faces_b} at {r.face_b.bbox} (--face {args.face}"
        + (": the most similar of all pairs)" if args.face == "all" else ")"),
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from facesieve.cli.demo import build_demo_data
    from facesieve.runner.pipeline import run_pipeline

    root = Path(args.out)
    data_dir = build_demo_data(root / "data")
    config = _config(args)
    chosen = args.config is not None or any(s.startswith("source.shard_size") for s in args.set)
    if not chosen:  # ~110 images: small shards so that every worker gets some
        config = config.with_overrides("source", shard_size=32)
    progress = False if args.quiet else None
    result = run_pipeline(str(data_dir), str(root / "out"), config, show_progress=progress)
    text = f"demo data: {data_dir}\n" + run_text(result.to_dict())
    _emit(args, result.to_dict(), text)
    return result.exit_code


def _clean_text(summary: dict[str, Any], out: str, note: str = "") -> str:
    acts = ", ".join(f"{k} {v}" for k, v in summary["actions"].items())
    reasons = ", ".join(f"{k} {v}" for k, v in summary["reasons"].items()) or "none"
    changes = ", ".join(f"{k} {v}" for k, v in summary.get("changes", {}).items())
    return (
        f"actions: {acts}\nreasons: {reasons}\nsince the previous report: {changes}{note}"
        f"\nreport: {out}/report/index.html\nactions: {out}/report/actions.parquet"
    )


def cmd_cluster(args: argparse.Namespace) -> int:
    return _stages(args, "cluster", ("cluster",))


def cmd_clean(args: argparse.Namespace) -> int:
    return _stages(args, "clean", ("clean",))


def cmd_run(args: argparse.Namespace) -> int:
    return _stages(args, "run", ("embed", "index", "cluster", "clean"))


def cmd_eval(args: argparse.Namespace) -> int:
    from facesieve.evaluate.run import EvalOptions, run_eval, scores_text

    opts = EvalOptions(
        min_images=args.min_images,
        mislabel_rate=args.mislabel_rate,
        mislabel_scope=args.mislabel_scope,
        swap_rate=args.swap_rate,
        refile_rate=args.refile_rate,
        near_dup_rate=args.near_dup_rate,
        exact_dup_rate=args.exact_dup_rate,
        corrupt_rate=args.corrupt_rate,
        no_face_rate=args.no_face_rate,
        photo_copy_rate=args.photo_copy_rate,
        inject=not args.no_inject,
        seed=args.seed,
    )
    report = run_eval(
        args.labeled,
        args.out,
        _config(args),
        opts,
        show_progress=False if args.quiet else None,
        photos=args.photos,
        split=args.split,
    )
    _emit(args, report, scores_text(report))
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    return _stages(args, "index", ("index",))


def cmd_search(args: argparse.Namespace) -> int:
    from facesieve.faces.engine import FaceEngine
    from facesieve.faces.verify import choose_faces, load_photo
    from facesieve.index.reader import IndexReader
    from facesieve.storage import open_store

    cfg = _config(args)
    try:
        data = Path(args.image).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {args.image}: {exc.strerror}") from exc
    reader = IndexReader(open_store(args.out, cfg.run.s3_endpoint), cfg.index)
    photo = load_photo(FaceEngine(cfg.faces, cfg.run.device), data, args.image)
    chosen = choose_faces(photo, args.face)
    chosen.sort(key=lambda i: -photo.faces[i].face_px)  # stable: equal sizes keep their order
    found = reader.search(np.stack([photo.faces[i].embedding for i in chosen]), args.k)
    report = []
    lines = []
    for i, matches in zip(chosen, found, strict=True):
        face = photo.faces[i]
        box = [round(float(v), 1) for v in face.bbox]
        report.append(
            {
                "face": i,
                "bbox": box,
                "face_px": round(face.face_px, 1),
                "matches": [asdict(m) for m in matches],
            }
        )
        lines.append(f"face {i} of {len(photo.faces)} at {box} ({face.face_px:.0f} px):")
        lines += [f"  {m.similarity:.4f}  {m.label or '-'}  {m.uri}  {m.face_id}" for m in matches]
    _emit(
        args,
        {"image": args.image, "face_rule": args.face, "n_faces": len(photo.faces), "faces": report},
        "\n".join(lines),
    )
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    from facesieve.apply.manifest import summary_text
    from facesieve.apply.run import ApplyOptions, apply_dataset

    opts = ApplyOptions(
        out=args.out,
        dest=args.dest,
        decisions=args.decisions,
        quarantine=args.quarantine,
        dry_run=args.dry_run,
        link=not args.copy,
        s3_endpoint=args.s3_endpoint,
    )
    result = apply_dataset(opts)
    text = summary_text(result.summary)
    if args.dry_run:
        changes = [f"write {k}" for k in result.would_write]
        text = "\n".join([*changes, *(f"remove {k}" for k in result.would_remove), text])
        result.summary["would_write"] = result.would_write
        result.summary["would_remove"] = result.would_remove
    _emit(args, result.summary, text)
    return result.exit_code


COMMANDS = {
    "embed": cmd_embed,
    "index": cmd_index,
    "search": cmd_search,
    "verify": cmd_verify,
    "demo": cmd_demo,
    "cluster": cmd_cluster,
    "clean": cmd_clean,
    "run": cmd_run,
    "eval": cmd_eval,
    "apply": cmd_apply,
    "config": cmd_config,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, ModelError) as exc:
        log.error("%s", exc)
        return 2
    except LockError as exc:  # another run holds OUT: nothing was done
        log.error("%s", exc)
        return 2
    except FacesieveError as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted; finished shards are kept, rerun to continue")
        return 130


if __name__ == "__main__":
    sys.exit(main())
