"""A small YAML writer for the generated configs: block style, stable order, nothing clever.

otelperf has no YAML dependency, and the generated files are read by people (reviewed in diffs) as
much as by Prometheus and Alertmanager: PromQL goes out as literal blocks (``|-``) so it reads as
written, every other string is double-quoted when plain style could change its meaning.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["dump"]

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _RESERVED:
        return text
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid YAML double-quoted string


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            out.extend(_entry(f"{pad}{_scalar(key)}:", item, indent))
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for item in value:
            if isinstance(item, Mapping) and item:
                inner = _lines(item, indent + 2)
                out.append(f"{pad}- {inner[0].lstrip()}")
                out.extend(inner[1:])
            else:
                out.extend(_entry(f"{pad}-", item, indent))
    else:
        out.append(pad + _scalar(value))
    return out


def _entry(head: str, value: Any, indent: int) -> list[str]:
    if isinstance(value, str) and "\n" in value:
        body = [(" " * (indent + 2) + line) if line else "" for line in value.rstrip("\n").split("\n")]
        return [f"{head} |-", *body]
    if isinstance(value, Mapping):
        return [f"{head} {{}}"] if not value else [head, *_lines(value, indent + 2)]
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [f"{head} []"] if not value else [head, *_lines(value, indent + 2)]
    return [f"{head} {_scalar(value)}"]


def dump(document: Mapping[str, Any], header: str = "") -> str:
    """``document`` as YAML text; ``header`` lines become ``#`` comments on top."""
    comments = [f"# {line}".rstrip() for line in header.splitlines()]
    return "\n".join([*comments, *_lines(document, 0)]) + "\n"
