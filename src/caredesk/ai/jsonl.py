"""JSON Lines in and out for the AI commands, with errors that name the line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO


class InputError(Exception):
    """Bad input: the message says where (file and line) and what is wrong."""


def iter_rows(lines: Iterable[str], fields: tuple[str, ...], source: str) -> Iterator[dict[str, Any]]:
    """Yield one dict per non-blank line; every field in `fields` must be a string."""
    seen = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        seen = True
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{source}, line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{source}, line {number}: expected a JSON object, got {type(row).__name__}")
        for field in fields:
            if field not in row:
                raise InputError(f"{source}, line {number}: missing field {field!r}")
            if not isinstance(row[field], str):
                raise InputError(f"{source}, line {number}: field {field!r} must be a string")
        yield row
    if not seen:
        raise InputError(f"{source}: no input (empty file)")


def read_file(path: str | Path, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{file}: no such file")
    with file.open(encoding="utf-8") as fh:
        return list(iter_rows(fh, fields, str(file)))


def write_row(out: TextIO, row: dict[str, Any]) -> None:
    out.write(json.dumps(row, ensure_ascii=False) + "\n")
