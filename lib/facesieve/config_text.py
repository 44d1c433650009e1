"""The config as text: the YAML ``facesieve config`` prints, and the key reference in the docs.

``config_yaml`` writes what ``load_config`` reads back (the round trip is tested), with URL
userinfo redacted. ``reference_table`` builds the Markdown table of every key (type, default, the
comment on its field) from the dataclasses themselves; docs/OPERATIONS.md holds a copy that a test
compares with it, so the documented defaults cannot drift from the code.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

import yaml

from facesieve.config import SECTIONS, Config
from facesieve.config_types import hints, short_type

_FIELD_LINE = re.compile(r"^\s{4}(\w+):[^=]*=\s*(.+?)(?:\s+#\s*(.*))?$")


def config_yaml(config: Config) -> str:
    """The effective config as YAML, one section per dataclass, secrets redacted."""
    header = "# facesieve effective configuration; load it with --config FILE\n"
    return header + yaml.safe_dump(config.public_dict(), sort_keys=False, width=100)


def _comments(cls: type) -> dict[str, str]:
    """Field -> the comment that follows it on its line (or the comment lines just above)."""
    found: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = _FIELD_LINE.match(line)
        if match:
            found[match.group(1)] = match.group(3) or " ".join(pending)
        pending = []
    return found


def _default_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def reference_table() -> str:
    """Markdown: every ``SECTION.KEY`` with its type, default and meaning."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    defaults = Config()
    for section, cls in SECTIONS.items():
        types_of, notes = hints(cls), _comments(cls)
        for f in dataclasses.fields(cls):
            value = getattr(getattr(defaults, section), f.name)
            note = notes.get(f.name, "").replace("|", "\\|")
            rows.append(
                f"| `{section}.{f.name}` | {short_type(types_of[f.name])} | "
                f"`{_default_text(value)}` | {note} |"
            )
    return "\n".join(rows) + "\n"
