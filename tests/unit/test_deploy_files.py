"""The deployment files, checked without Docker or a cloud (neither exists where the tests run):
the image leaves the container's command to whoever starts it and pins what the tests use, and
ray_cluster.yaml is a valid launcher config whose GPU flags reach GPU nodes only."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "infra" / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    logical, out = "", []
    for line in text.splitlines():
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        logical += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            word, _, rest = logical.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            logical = ""
    return out


def build_args(text: str) -> dict[str, str]:
    return dict(
        arg.split("=", 1) for word, arg in instructions(text) if word == "ARG" and "=" in arg
    )


def readme_torch() -> str:
    found = set(re.findall(r"torch==([0-9.]+)", (ROOT / "README.md").read_text()))
    found |= set(re.findall(r"torch==([0-9.]+)", (ROOT / ".ci" / "run").read_text()))
    assert len(found) == 1, found
    return found.pop()


def transparent_entrypoint(args: str) -> bool:
    """An ENTRYPOINT that ends in exec "$@" runs the command it is given; anything else
    (a CLI) swallows `bash` and `ray start ...`."""
    return args.replace("'", '"').rstrip(" ]").endswith('exec "$@"')


def test_the_image_has_no_entrypoint_that_swallows_the_command() -> None:
    found = instructions(DOCKERFILE.read_text())
    for word, args in found:
        if word == "ENTRYPOINT":
            assert transparent_entrypoint(args), args
    cmds = [json.loads(a) for w, a in found if w == "CMD"]
    assert cmds[-1] == ["bash"]
    # the check itself: the old image's entrypoint is caught
    assert not transparent_entrypoint('["facesieve"]')


def test_the_image_pins_what_the_tests_run_with() -> None:
    args = build_args(DOCKERFILE.read_text())
    assert args["TORCH_VERSION"] == readme_torch()
    for package, arg in (("ray", "RAY_VERSION"), ("onnxruntime", "ONNXRUNTIME_VERSION")):
        assert args[arg] == importlib.metadata.version(package), package
    faiss = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions()}
    tested_faiss = faiss.get("faiss-cpu") or faiss.get("faiss_cpu")
    if tested_faiss is None:
        pytest.skip("faiss-cpu is not installed here")
    assert args["FAISS_VERSION"] == tested_faiss
    text = DOCKERFILE.read_text()
    assert '"torch==${TORCH_VERSION}"' in text and '"ray[default]==${RAY_VERSION}"' in text
    assert "python:3.11" in text.split("FROM", 1)[1].split()[0]


def test_the_image_runs_as_a_user_and_copies_only_the_project() -> None:
    found = instructions(DOCKERFILE.read_text())
    users = [a for w, a in found if w == "USER"]
    assert users and users[-1] not in ("root", "0")
    copied = {src for w, a in found if w == "COPY" for src in shlex.split(a)[:-1]}
    assert copied == {"pyproject.toml", "README.md", "lib", "jobs"}
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests", ".env"} <= set(ignored)


# ---- ray_cluster.yaml --------------------------------------------------------------------------

CLUSTER = ROOT / "ray_cluster.yaml"


def node_docker(config: dict, node_type: str) -> dict:
    """The docker options a node of this type gets: the launcher updates the global section
    with the node type's own (Ray's autoscaler, _get_node_specific_docker_config)."""
    merged = dict(config.get("docker", {}))
    merged.update(config["available_node_types"][node_type].get("docker", {}))
    return merged


def run_options(config: dict, node_type: str) -> list[str]:
    docker = node_docker(config, node_type)
    role = "head" if node_type == config["head_node_type"] else "worker"
    return [*docker.get("run_options", []), *docker.get(f"{role}_run_options", [])]


def image(config: dict, node_type: str) -> str:
    docker = node_docker(config, node_type)
    role = "head" if node_type == config["head_node_type"] else "worker"
    return docker.get(f"{role}_image") or docker["image"]


def gpu_flag_problems(config: dict) -> list[str]:
    problems = []
    for name, node in config["available_node_types"].items():
        wants = node.get("resources", {}).get("GPU", 0) > 0
        has = any("--gpus" in o or "--runtime=nvidia" in o for o in run_options(config, name))
        if wants != has:
            problems.append(f"{name}: GPU resources {wants}, GPU docker flags {has}")
    return problems


def test_ray_cluster_yaml_passes_rays_own_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema_file = Path(importlib.util.find_spec("ray.autoscaler").origin).parent / "ray-schema.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(yaml.safe_load(CLUSTER.read_text()), schema)


def test_gpu_flags_reach_gpu_nodes_only() -> None:
    config = yaml.safe_load(CLUSTER.read_text())
    assert gpu_flag_problems(config) == []
    gpu_types = [n for n, t in config["available_node_types"].items() if t["resources"].get("GPU")]
    assert gpu_types and all(image(config, n).endswith("-cuda") for n in gpu_types)
    # the old config: --gpus all in the global worker options reached the CPU workers too
    old = json.loads(json.dumps(config))
    old["docker"]["worker_run_options"] = ["--gpus all"]
    for node in old["available_node_types"].values():
        node.pop("docker", None)
    assert any(p.startswith("cpu_worker") for p in gpu_flag_problems(old))


def test_every_node_type_has_an_image_and_the_head_runs_no_models() -> None:
    config = yaml.safe_load(CLUSTER.read_text())
    for name in config["available_node_types"]:
        assert image(config, name).startswith("facesieve/facesieve:"), name
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}
    types = config["available_node_types"]
    workers = [t for n, t in types.items() if n != config["head_node_type"]]
    assert all(t["min_workers"] == 0 and t["max_workers"] > 0 for t in workers)
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert all("RAY_AUTH_MODE=token" in c for c in starts if "ray start" in c)
    assert "~/.ray/auth_token" in config["file_mounts"]
