"""``elicence issuer ...``: the issuing authority's command-line tools.

Authorities and operators, registry records (synthetic generation, validated import), credential
offers one at a time (with a QR of the deep link) and bulk issuance for a whole registry::

    elicence issuer authority create --slug sh-amr --name-zh .. --name-en .. --type business-licence
    elicence issuer operator create --authority sh-amr --name "registry clerk"
    elicence issuer records generate --count 1000 --out records.csv
    elicence issuer records import records.csv --authority sh-amr
    elicence issuer offers create --authority sh-amr --uscc 91310000MA1K3YJ12X --qr offer.png
    elicence issuer issue-bulk records.csv --authority sh-amr --out offers.csv

Wired into the CLI by :func:`add_issuer_commands`. Settings come from the environment
(:meth:`elicence.config.Settings.from_env`: database URL, KEK, public URL) and the service is
:func:`elicence.services.open_issuer`; the server extra (SQLAlchemy, ``issuer``) is imported when a
command runs, so ``elicence --help`` works in the lean install, and no command imports FastAPI.

Record files
------------
One record per row/element, the claims of one credential type (``--type``, default business licence):

- **CSV**: UTF-8 with or without a BOM; a header row of dotted claim paths
  (``registration.business_term.from``, ``registration.registered_capital.amount``, ...), the leaves of
  the type's JSON Schema. An empty cell is an absent claim, or ``null`` where the schema allows null
  (``registration.business_term.to`` of a long-term licence); ``true``/``false`` where the schema wants
  a boolean, numbers where it wants numbers, JSON text where it wants an array or object. So an object
  all of whose cells are empty (a branch's ``registered_capital``) is absent. An empty string cannot be
  written (it reads back as absent); no schema here admits one. :func:`write_flat_csv` and
  :func:`read_flat_csv` are the pair.
- **JSON**: one array of claim objects, read as a stream (an element at a time).
- **JSONL**: one claim object per line.

Import is all or nothing for refused input: the whole file is read and every row validated
(``IssuerService.validate_records``: the type's schema and the GB 32100 USCC check; plus no USCC twice in
the file) before anything is written, and the first bad row is reported by its place (CSV and JSONL: the
physical line of the file; JSON: the element number) with exit 1. Only then is the file read a second
time and written in batches, each one transaction (``IssuerService.import_records``); the second read is
compared batch by batch (SHA-256) with what was validated and stops at a difference. The file is never
held in memory: what is kept is one batch and the USCCs with their lines.

What a batched write cannot promise: a database failure (connection lost, disk full) in the middle of
the writes leaves the batches before it committed. The command says how many; running it again is safe
for ``records import`` (records are replaced by USCC). ``issue-bulk`` appends each batch's rows to the
offers file and fsyncs it right after the batch commits, so a crash (even ``kill -9``) loses at most
the PINs of the batch in flight, whose offers are committed but unlisted; ``issue-bulk --resume`` with
the same arguments keeps the listed offers, withdraws the unlisted open ones (a PIN exists only as an
HMAC in the database, so an unwritten one is lost) and offers those records anew: one open offer per
record, each PIN in the file once.

Exit codes: 0 done; 1 refused input (``elicence: <code>: line N: <reason>``), or the service refused;
2 usage, settings, database or file-system problems.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import csv
import hashlib
import io
import json
import os
import random
import re
import secrets
import sys
import time
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "add_issuer_commands",
    "write_flat_csv",
    "read_flat_csv",
    "read_records",
    "write_records",
    "FileMalformed",
    "Progress",
]

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2

FORMATS = ("csv", "json", "jsonl")
_EXTENSIONS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
DEFAULT_TYPE = "business-licence"
DEFAULT_BATCH = 1000
#: An element of a JSON array larger than this is refused (a record is a few kilobytes).
MAX_ELEMENT_CHARS = 1 << 20
_READ_CHUNK = 1 << 20
#: Types ``records generate`` can make: the importable ones (each record carries a USCC).
_GENERATED_TYPES = ("business-licence", "food-business-permit")
_NOT_IMPORTED = "staff-authorisation"  # requested by a legal representative, never imported


# --- errors ---------------------------------------------------------------------------------------------


class _Failure(Exception):
    """Ends a command: ``elicence: <code>: <message>`` on stderr and ``exit_code``."""

    def __init__(self, code: str, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = exit_code


def _usage(message: str, code: str = "usage_error") -> _Failure:
    return _Failure(code, message, EXIT_USAGE)


def _refused(code: str, message: str) -> _Failure:
    return _Failure(code, message, EXIT_REFUSED)


class FileMalformed(Exception):
    """A record file cannot be read as its format: ``where`` names the place (``line 3``, ``element 7``)."""

    code = "file_malformed"

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


# --- progress -------------------------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """A one-line progress bar on a stream: count/total, percentage, rate and ETA.

    Redrawn at most every ``interval`` seconds (and once by :meth:`close`). ``total`` may be unknown;
    then ``fraction`` (a callable giving 0..1, e.g. the share of the file read) drives the percentage
    and the ETA. Disabled, it costs one attribute test per :meth:`advance`.
    """

    def __init__(
        self,
        label: str,
        *,
        total: int | None = None,
        fraction: Callable[[], float] | None = None,
        enabled: bool = True,
        stream: TextIO | None = None,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.enabled = enabled
        self._fraction = fraction
        self._stream = sys.stderr if stream is None else stream
        self._interval = interval
        self._clock = clock
        self._start = clock()
        self._last = float("-inf")
        self._width = 0

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.enabled:
            now = self._clock()
            if now - self._last >= self._interval:
                self._last = now
                self._draw(now)

    def _share(self) -> float | None:
        if self.total:
            return min(1.0, self.done / self.total)
        if self._fraction is not None:
            try:
                return max(0.0, min(1.0, self._fraction()))
            except (OSError, ValueError):
                return None
        return None

    def line(self, now: float | None = None) -> str:
        """The text of the bar as it would be drawn now."""
        now = self._clock() if now is None else now
        elapsed = max(now - self._start, 1e-9)
        rate = self.done / elapsed
        share = self._share()
        count = f"{self.done:,}/{self.total:,}" if self.total is not None else f"{self.done:,}"
        bar_len = 24
        filled = int(bar_len * share) if share is not None else 0
        bar = "[" + "#" * filled + "." * (bar_len - filled) + "]" if share is not None else ""
        pct = f"{share * 100:3.0f}%" if share is not None else ""
        if share is not None and 0 < share < 1:
            eta = f"ETA {_duration(elapsed * (1 - share) / share)}"
        elif share is not None and share >= 1:
            eta = f"in {_duration(elapsed)}"
        else:
            eta = ""
        parts = [self.label, bar, count, pct, f"{rate:,.0f}/s", eta]
        return " ".join(p for p in parts if p)

    def _draw(self, now: float) -> None:
        text = self.line(now)
        pad = max(0, self._width - len(text))
        self._width = len(text)
        self._stream.write("\r" + text + " " * pad)
        self._stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(self._clock())
            self._stream.write("\n")
            self._stream.flush()


def _progress_enabled(args: argparse.Namespace) -> bool:
    if getattr(args, "progress", False):
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


# --- claim columns (flat CSV) ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Column:
    """One CSV column: a leaf of the type's schema."""

    keys: tuple[str, ...]
    types: frozenset[str]

    @property
    def name(self) -> str:
        return ".".join(self.keys)

    @property
    def nullable(self) -> bool:
        return "null" in self.types

    def parse(self, cell: str) -> Any:
        """The claim value of a non-empty cell; a cell that does not fit is kept as text for the
        schema to refuse with its own message."""
        types = self.types
        if "string" in types or not types:
            return cell
        if "boolean" in types and cell in ("true", "false"):
            return cell == "true"
        if "integer" in types or "number" in types:
            try:
                return int(cell)
            except ValueError:
                if "number" in types:
                    try:
                        value = float(cell)
                    except ValueError:
                        pass
                    else:
                        if value == value and value not in (float("inf"), float("-inf")):
                            return value
        if "array" in types or "object" in types:
            try:
                return json.loads(cell)
            except ValueError:
                return cell
        if "null" in types and cell == "null":
            return None
        return cell

    @staticmethod
    def cell(value: Any) -> str:
        if value is None:
            return ""
        if value is True:
            return "true"
        if value is False:
            return "false"
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)):
            return json.dumps(value)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _schema_types(node: Mapping[str, Any]) -> frozenset[str]:
    t = node.get("type")
    if isinstance(t, str):
        return frozenset({t})
    if isinstance(t, list):
        return frozenset(x for x in t if isinstance(x, str))
    if "enum" in node or "const" in node:
        values = node.get("enum", [node.get("const")])
        kinds = {"string" if isinstance(v, str) else "boolean" if isinstance(v, bool) else
                 "null" if v is None else "number" if isinstance(v, (int, float)) else "object" for v in values}
        return frozenset(kinds)
    return frozenset()


def _columns(ctype: Any) -> tuple[_Column, ...]:
    """The leaves of the type's schema in schema order: objects with ``properties`` are descended into;
    anything else (strings, numbers, booleans, arrays) is one column."""
    out: list[_Column] = []

    def walk(node: Mapping[str, Any], prefix: tuple[str, ...]) -> None:
        for name, sub in node.get("properties", {}).items():
            if not isinstance(sub, Mapping):
                continue
            keys = prefix + (name,)
            if "properties" in sub:
                walk(sub, keys)
            else:
                out.append(_Column(keys, _schema_types(sub)))

    walk(ctype.schema, ())
    return tuple(out)


def _flattener(columns: Sequence[_Column]) -> Callable[[Mapping[str, Any]], list[str]]:
    """A function from one record to its cells; it raises ``ValueError`` for a claim that has no column."""
    # A tree of the column paths: a key maps to the column index (a leaf) or to the subtree.
    tree: dict[str, Any] = {}
    for i, c in enumerate(columns):
        node = tree
        for key in c.keys[:-1]:
            node = node.setdefault(key, {})
        node[c.keys[-1]] = i
    width = len(columns)
    cell = _Column.cell

    def walk(obj: Mapping[str, Any], node: Mapping[str, Any], cells: list[str], prefix: str) -> None:
        for key, value in obj.items():
            sub = node.get(key)
            if isinstance(sub, int):
                cells[sub] = cell(value)
            elif sub is not None and isinstance(value, Mapping):
                walk(value, sub, cells, f"{prefix}{key}.")
            else:
                raise ValueError(f"claim {prefix}{key!s} has no column in this type")

    def flatten(claims: Mapping[str, Any]) -> list[str]:
        cells = [""] * width
        walk(claims, tree, cells, "")
        return cells

    return flatten


def write_flat_csv(out: TextIO, ctype: Any, records: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Write records of ``ctype`` as flat CSV (header of dotted claim paths) to ``out``, lazily.

    A generator: yields each record once its row is written, so the caller can count or show progress.
    Raises ``ValueError`` for a record with a claim the type's schema does not have. ``out`` should be
    opened with ``newline=""``.
    """
    columns = _columns(ctype)
    flatten = _flattener(columns)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.name for c in columns])
    for record in records:
        writer.writerow(flatten(record))
        yield record


def read_flat_csv(path: str | os.PathLike[str], ctype: Any) -> Iterator[tuple[int, dict[str, Any], str]]:
    """Read a flat CSV of ``ctype`` records: yields ``(line, claims, raw)`` per row.

    ``line`` is the physical line (1-based) where the row starts; ``raw`` the row's cells joined, for
    fingerprinting. Blank lines are skipped. Raises :class:`FileMalformed` (header not claim paths of the
    type, wrong number of cells, broken quoting, not UTF-8) and ``OSError``.
    """
    by_name = {c.name: c for c in _columns(ctype)}
    with open(path, "rb") as fh:
        reader = csv.reader(_text_lines(fh), strict=True)
        prev = 0
        try:
            header = next(reader, None)
            if header is None:
                raise FileMalformed("line 1", "the file is empty; expected a header row of claim paths")
            columns = _header(header, by_name, ctype)
            prev = reader.line_num
            width = len(columns)
            # Per column: the parent keys, the member, whether empty is null, and the parser (None:
            # the cell is the value, as _Column.parse has it for text).
            plan = [(c.keys[:-1], c.keys[-1], c.nullable, None if "string" in c.types or not c.types else c.parse)
                    for c in columns]
            for cells in reader:
                line = prev + 1
                prev = reader.line_num
                if not cells:
                    continue
                if len(cells) != width:
                    raise FileMalformed(f"line {line}", f"{len(cells)} cells, but the header has {width} columns")
                claims: dict[str, Any] = {}
                for (parents, member, nullable, parse), cell in zip(plan, cells):
                    if cell == "":
                        if not nullable:
                            continue
                        value = None
                    else:
                        value = cell if parse is None else parse(cell)
                    target = claims
                    for key in parents:
                        target = target.setdefault(key, {})
                    target[member] = value
                yield line, claims, "\x1f".join(cells)
        except csv.Error as exc:
            raise FileMalformed(f"line {prev + 1}", f"not valid CSV: {exc}") from exc


def _text_lines(fh: Any) -> Iterator[str]:
    """The lines of a binary file as text: UTF-8, a BOM at the start dropped; a line that is not UTF-8
    raises :class:`FileMalformed` naming it (decoding line by line, so the line is known)."""
    for number, data in enumerate(fh, 1):
        try:
            line = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FileMalformed(f"line {number}", f"not UTF-8 text ({exc.reason} at column {exc.start + 1})") from exc
        if number == 1 and line.startswith("\ufeff"):
            line = line[1:]
        yield line


def _header(header: list[str], by_name: Mapping[str, _Column], ctype: Any) -> list[_Column]:
    names = [h.strip() for h in header]
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise FileMalformed(
            "line 1",
            f"column {unknown[0]!r} is not a claim path of {ctype.slug} (expected dotted paths such as "
            f"{', '.join(list(by_name)[:3])}, ...)",
        )
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise FileMalformed("line 1", f"column {n!r} appears twice")
        seen.add(n)
    return [by_name[n] for n in names]


# --- JSON and JSONL -------------------------------------------------------------------------------------

_WS = re.compile(r"[ \t\n\r]*")


class _JsonArrayReader:
    """Streams the elements of one top-level JSON array, a chunk of the file at a time."""

    def __init__(self, fh: Any) -> None:
        self._fh = fh  # binary
        self._text = codecs.getincrementaldecoder("utf-8-sig")()
        self._decoder = json.JSONDecoder()
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._lines_before = 0  # newlines in the text already dropped from the buffer

    def _fill(self) -> bool:
        if self._eof:
            return False
        data = self._fh.read(_READ_CHUNK)
        try:
            chunk = self._text.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            line = self._line(len(self._buf)) + data[: exc.start].count(b"\n")
            raise FileMalformed(f"line {line}", f"not UTF-8 text ({exc.reason})") from exc
        if not data:
            self._eof = True
            return False
        self._lines_before += self._buf.count("\n", 0, self._pos)
        self._buf = self._buf[self._pos :] + chunk
        self._pos = 0
        return True

    def _line(self, pos: int) -> int:
        return self._lines_before + self._buf.count("\n", 0, pos) + 1

    def _skip_ws(self) -> str:
        """The next non-blank character ('' at the end of the file), not consumed."""
        while True:
            self._pos = _WS.match(self._buf, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill():
                return ""

    def _fail(self, number: int, message: str, pos: int | None = None) -> FileMalformed:
        where = f"element {number}" if number else "the array"
        return FileMalformed(where, f"{message} (line {self._line(self._pos if pos is None else pos)})")

    def __iter__(self) -> Iterator[tuple[int, Any, str]]:
        first = self._skip_ws()
        if first != "[":
            raise self._fail(0, "a JSON record file is one array of objects: expected '['"
                             + ("" if first else ", found the end of the file"))
        self._pos += 1
        number = 0
        if self._skip_ws() == "]":
            self._pos += 1
        else:
            while True:
                number += 1
                value, raw = self._element(number)
                yield number, value, raw
                c = self._skip_ws()
                if c == ",":
                    self._pos += 1
                    if self._skip_ws() == "]":
                        raise self._fail(number + 1, "a ']' after ',' (trailing comma)")
                    continue
                if c == "]":
                    self._pos += 1
                    break
                raise self._fail(number + 1, "expected ',' or ']' after the element"
                                 if c else "the file ends inside the array (no closing ']')")
        if self._skip_ws():
            raise self._fail(number + 1, "more text after the closing ']'")

    def _element(self, number: int) -> tuple[Any, str]:
        if not self._skip_ws():
            raise self._fail(number, "the file ends inside the array (no closing ']')")
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                if len(self._buf) - self._pos > MAX_ELEMENT_CHARS:
                    raise self._fail(number, f"not valid JSON, or larger than {MAX_ELEMENT_CHARS} characters: "
                                     f"{exc.msg}", exc.pos) from exc
                if self._fill():
                    continue
                raise self._fail(number, f"not valid JSON: {exc.msg}", exc.pos) from exc
            if end == len(self._buf) and self._fill():
                continue  # a number or literal may go on in the next chunk
            raw = self._buf[self._pos : end]
            self._pos = end
            return value, raw


def _read_json(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any, str]]:
    with open(path, "rb") as fh:
        yield from _JsonArrayReader(fh)


def _read_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any, str]]:
    with open(path, "rb") as fh:
        for number, line in enumerate(_text_lines(fh), 1):
            text = line.strip()
            if not text:
                continue
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise FileMalformed(f"line {number}", f"not valid JSON: {exc}") from exc
            yield number, value, text


def read_records(path: str | os.PathLike[str], fmt: str, ctype: Any) -> Iterator[tuple[int, Any, str]]:
    """``(place, claims, raw)`` per record of a csv/json/jsonl file; see :func:`read_flat_csv`.

    ``place`` is the physical line (csv, jsonl) or the 1-based element number (json). Raises
    :class:`FileMalformed` and ``OSError``.
    """
    if fmt == "csv":
        return read_flat_csv(path, ctype)
    if fmt == "json":
        return _read_json(path)
    if fmt == "jsonl":
        return _read_jsonl(path)
    raise ValueError(f"unknown format {fmt!r}")


def _place(fmt: str) -> str:
    return "element" if fmt == "json" else "line"


def write_records(out: TextIO, fmt: str, ctype: Any, records: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Write records as csv (:func:`write_flat_csv`), a JSON array or JSON lines; a generator like
    :func:`write_flat_csv`."""
    if fmt == "csv":
        yield from write_flat_csv(out, ctype, records)
        return
    if fmt == "json":
        out.write("[")
        sep = "\n"
        for record in records:
            out.write(sep + json.dumps(record, ensure_ascii=False, separators=(",", ":")))
            sep = ",\n"
            yield record
        out.write("\n]\n")
        return
    if fmt == "jsonl":
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
            yield record
        return
    raise ValueError(f"unknown format {fmt!r}")


# --- shared helpers of the handlers ---------------------------------------------------------------------


def _format_of(path: str, given: str | None) -> str:
    if given:
        return given
    fmt = _EXTENSIONS.get(Path(path).suffix.lower())
    if fmt is None:
        raise _usage(f"cannot tell the format of {path!r} from its extension: give --format csv, json or jsonl")
    return fmt


def _credential_type(name: str) -> Any:
    from schemas.errors import UnknownCredentialType
    from schemas.registry import all_types, get_type

    try:
        return get_type(name)
    except UnknownCredentialType:
        known = ", ".join(t.slug for t in all_types())
        raise _usage(f"no credential type {name!r} (known: {known})", "unknown_credential_type") from None


def _open_service() -> Any:
    """The issuer service of the configured deployment (database migrated to head)."""
    from elicence.config import Settings
    from elicence.services import open_issuer

    return open_issuer(Settings.from_env())


def _batched(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _digest(batch: Sequence[tuple[int, Any, str]]) -> tuple[bytes, int]:
    """SHA-256 of a batch's raw records, and their size in bytes."""
    h = hashlib.sha256()
    size = 0
    for _, _, raw in batch:
        data = raw.encode("utf-8", "surrogatepass")
        size += len(data) + 1
        h.update(data)
        h.update(b"\x1e")
    return h.digest(), size


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _importable(service: Any, authority: str, ctype: Any) -> None:
    """Refuse before reading anything: unknown authority, a type it does not issue, a non-imported type."""
    from issuer.store import NotFound

    try:
        auth = service.authority(authority)
    except NotFound as exc:
        raise _refused(exc.code, exc.detail) from None
    if ctype.vct not in auth.vcts:
        raise _refused("unknown_credential_type", f"{authority!r} does not issue {ctype.slug!r}")
    if ctype.slug == _NOT_IMPORTED:
        raise _refused("unknown_credential_type",
                       "staff authorisations are requested by the legal representative, not imported")


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise _usage(f"{name} must be at least 1")


def _check_expires_in(service: Any, value: int | None) -> None:
    if value is None:
        return
    top = service.policy.max_offer_ttl
    if not 60 <= value <= top:
        raise _usage(f"--expires-in must be from 60 to {top} seconds")


def _open_new(path: str, mode: int = 0o600) -> TextIO:
    """Create ``path`` (never overwriting) with ``mode`` and open it for text writing."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise _usage(f"{path} exists; refusing to overwrite it", "file_exists") from None
    except OSError as exc:
        raise _usage(f"cannot create {path}: {exc.strerror}", "file_unwritable") from None
    os.fchmod(fd, mode)  # whatever the umask
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


# --- validation and writing of a record file ------------------------------------------------------------


@dataclass
class _Checked:
    """What the validation pass keeps: the USCCs in file order (with their places) and batch digests."""

    usccs: dict[str, int]
    digests: list[bytes]
    seconds: float

    @property
    def count(self) -> int:
        return len(self.usccs)


def _validate_file(service: Any, authority: str, ctype: Any, path: str, fmt: str, batch: int, show: bool) -> _Checked:
    """Read the whole file and validate every record; raises ``_Failure`` (exit 1) at the first bad one."""
    from issuer.store import InvalidRow

    place = _place(fmt)
    usccs: dict[str, int] = {}
    digests: list[bytes] = []
    size = max(os.path.getsize(path), 1)
    start = time.perf_counter()
    read_bytes = [0]  # the share of the file read, from the records' own text (for the ETA)
    bar = Progress("validating", fraction=lambda: read_bytes[0] / size, enabled=show)
    try:
        for chunk in _batched(read_records(path, fmt, ctype), batch):
            # The first bad row in file order: a USCC seen before, or a row the service refuses.
            duplicate = None
            for number, claims, _ in chunk:
                uscc = claims.get("uscc") if isinstance(claims, dict) else None
                if isinstance(uscc, str):
                    if uscc in usccs:
                        duplicate = (number, uscc, usccs[uscc])
                        break
                    usccs[uscc] = number
            rows = [(number, ctype.slug, claims) for number, claims, _ in chunk
                    if duplicate is None or number < duplicate[0]]
            try:
                service.validate_records(authority, rows)
            except InvalidRow as exc:
                cause = exc.__cause__
                code = getattr(cause, "code", None) or exc.code
                raise _refused(code, f"{place} {exc.index}: {exc.reason}") from None
            if duplicate is not None:
                number, uscc, first = duplicate
                raise _refused("duplicate_record", f"{place} {number}: USCC {uscc} is already on {place} {first}; "
                               "one record per enterprise and type")
            missing = [n for n, claims, _ in chunk if not isinstance(claims, dict) or not isinstance(claims.get("uscc"), str)]
            if missing:  # pragma: no cover - the service refuses a record without a uscc first
                raise _refused("record_invalid", f"{place} {missing[0]}: no uscc")
            digest, nbytes = _digest(chunk)
            digests.append(digest)
            read_bytes[0] += nbytes
            bar.advance(len(chunk))
        bar.total = bar.done  # read to the end
    except FileMalformed as exc:
        raise _refused(exc.code, str(exc)) from None
    finally:
        bar.close()
    return _Checked(usccs, digests, time.perf_counter() - start)


def _write_file(service: Any, authority: str, ctype: Any, path: str, fmt: str, batch: int, checked: _Checked,
                show: bool, written: list[int], skip: Container[str] = ()) -> float:
    """Read the file again and import it in batches; each batch must be the one validated. Records whose
    USCC is in ``skip`` are counted as written but not imported again (a resumed bulk issuance).

    One batch is written (in a thread of its own: the time is mostly the database's) while the next is
    read and checked; the batches still commit one at a time, in the file's order, and a batch is sent
    only after the one before it committed."""
    from issuer.store import RecordInput

    start = time.perf_counter()
    bar = Progress("importing ", total=checked.count, enabled=show)
    pending: tuple[Future[Any] | None, int] | None = None

    def settle() -> None:
        nonlocal pending
        if pending is not None:
            (future, n), pending = pending, None
            if future is not None:
                future.result()
            written[0] += n
            bar.advance(n)

    try:
        with ThreadPoolExecutor(1, thread_name_prefix="elicence-import") as writer:
            try:
                for k, chunk in enumerate(_batched(read_records(path, fmt, ctype), batch)):
                    if k >= len(checked.digests) or _digest(chunk)[0] != checked.digests[k]:
                        settle()
                        raise _refused("file_changed", f"{path} changed after it was validated (batch {k + 1}); "
                                       f"{written[0]} records were written before it")
                    items = [RecordInput(ctype.vct, claims["uscc"], claims) for _, claims, _ in chunk
                             if claims["uscc"] not in skip]
                    settle()
                    pending = (writer.submit(service.import_records, authority, items, actor="cli") if items else None,
                               len(chunk))
                settle()
            except BaseException:
                if pending is not None:  # the batch in flight commits or fails whatever happened here
                    with contextlib.suppress(Exception):
                        settle()
                raise
    except FileMalformed as exc:
        raise _refused("file_changed", f"{path} changed after it was validated: {exc}") from None
    finally:
        bar.close()
    if written[0] != checked.count:
        raise _refused("file_changed", f"{path} changed after it was validated: {written[0]} records written, "
                       f"{checked.count} validated")
    service.refresh_record_statistics()
    return time.perf_counter() - start


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s" if seconds > 0 else "-"


# --- handlers -------------------------------------------------------------------------------------------


def _run(body: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap a handler: map settings, database, service and file errors to the exit codes."""

    def handler(args: argparse.Namespace) -> int:
        try:
            return body(args)
        except _Failure as exc:
            print(f"elicence: {exc.code}: {exc}", file=sys.stderr)
            return exc.exit_code
        except Exception as exc:
            reported = _report(exc)
            if reported is None:
                raise
            code, text, exit_code = reported
            print(f"elicence: {code}: {text}", file=sys.stderr)
            return exit_code

    handler.__doc__ = body.__doc__
    handler.__name__ = body.__name__
    return handler


def _report(exc: Exception) -> tuple[str, str, int] | None:
    """(code, message, exit code) of an error a command may meet, or ``None`` for a bug.

    The error classes are imported here, when there is an error to classify, so that a command that
    needs no database (``records generate``) runs without the server extra.
    """
    if isinstance(exc, ImportError):  # ModuleNotFoundError included
        return "server_extra_missing", f"{exc}: this command needs the server extra (pip install 'elicence[server]')", EXIT_USAGE
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return "file_unreadable", f"{where}{exc.strerror or exc}", EXIT_USAGE
    from credentials.errors import CredentialError
    from keys.errors import KeyMaterialError, KeystoreError

    if isinstance(exc, KeystoreError):  # no KEK, or not this keystore's: the settings
        return exc.code, str(exc), EXIT_USAGE
    if isinstance(exc, (CredentialError, KeyMaterialError)):
        return exc.code, str(exc), EXIT_REFUSED
    try:
        from sqlalchemy.exc import SQLAlchemyError

        from elicence.config import ConfigError
        from issuer.store import StoreError
    except ImportError:  # the lean install: none of those can have been raised
        return None
    if isinstance(exc, ConfigError):
        return exc.code, str(exc), EXIT_USAGE
    if isinstance(exc, StoreError):  # the service refused (not_found, conflict, invalid_value, ...)
        return exc.code, str(exc), EXIT_REFUSED
    if isinstance(exc, SQLAlchemyError):
        first = (str(exc).splitlines() or [""])[0]
        return "database_unavailable", f"{type(exc).__name__}: {first}", EXIT_USAGE
    return None


@_run
def authority_create(args: argparse.Namespace) -> int:
    """``elicence issuer authority create``."""
    types = [_credential_type(t).slug for t in args.types]
    if args.status_list_size is not None:
        _check_positive("--status-list-size", args.status_list_size)
    service = _open_service()
    extra = {} if args.status_list_size is None else {"status_list_size": args.status_list_size}
    auth = service.create_authority(slug=args.slug, name_zh=args.name_zh, name_en=args.name_en, types=types,
                                    region=args.region, actor="cli", **extra)
    print(f"authority {auth.slug} created")
    _print_authority(auth)
    return EXIT_OK


def _print_authority(auth: Any) -> None:
    from schemas.registry import get_type

    print(f"  credential issuer  {auth.issuer_id}")
    print(f"  name               {auth.name_zh} / {auth.name_en}")
    if auth.region:
        print(f"  region             {auth.region}")
    print(f"  types              {', '.join(get_type(v).slug for v in auth.vcts)}")
    print(f"  status list size   {auth.status_list_size}")


@_run
def authority_list(args: argparse.Namespace) -> int:
    """``elicence issuer authority list``."""
    service = _open_service()
    authorities = service.authorities()
    if not authorities:
        print("no authorities yet (create one with: elicence issuer authority create)")
    for auth in authorities:
        print(auth.slug)
        _print_authority(auth)
    return EXIT_OK


@_run
def operator_create(args: argparse.Namespace) -> int:
    """``elicence issuer operator create``."""
    service = _open_service()
    created = service.create_operator(authority=args.authority, name=args.name, actor="cli")
    print(f"operator {created.operator.id} of {created.operator.authority} created ({created.operator.name})")
    print(f"API key (shown once, keep it secret): {created.api_key}")
    return EXIT_OK


def _generate(slug: str, count: int, seed: int) -> Iterator[dict[str, Any]]:
    from schemas.synthetic import generate_business_licence, generate_food_permit

    rng = random.Random(seed)
    seen: set[str] = set()
    while len(seen) < count:
        licence = generate_business_licence(rng)
        record = licence if slug == "business-licence" else generate_food_permit(rng, licence)
        if record["uscc"] in seen:
            continue  # one record per enterprise in a file
        seen.add(record["uscc"])
        yield record


@_run
def records_generate(args: argparse.Namespace) -> int:
    """``elicence issuer records generate``."""
    ctype = _credential_type(args.type)
    if ctype.slug not in _GENERATED_TYPES:
        raise _usage(f"records generate makes {' and '.join(_GENERATED_TYPES)} records, not {ctype.slug}")
    if args.count < 0:
        raise _usage("--count must not be negative")
    fmt = _format_of(args.out, args.format)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise _usage(f"{args.out} exists; give --force to replace it", "file_exists")
    partial = out.with_name(f".{out.name}.{os.getpid()}.part")
    start = time.perf_counter()
    bar = Progress("generating", total=args.count, enabled=_progress_enabled(args))
    try:
        with open(partial, "w", encoding="utf-8", newline="") as fh:
            for _ in write_records(fh, fmt, ctype, _generate(ctype.slug, args.count, seed)):
                bar.advance()
        os.replace(partial, out)
    finally:
        bar.close()
        if partial.exists():
            partial.unlink()
    seconds = time.perf_counter() - start
    print(f"wrote {args.count} {ctype.slug} records ({fmt}, seed {seed}) to {args.out} in {seconds:.1f} s "
          f"({_rate(args.count, seconds)})")
    return EXIT_OK


def _prepare_import(args: argparse.Namespace) -> tuple[Any, Any, str]:
    ctype = _credential_type(args.type)
    fmt = _format_of(args.file, args.format)
    _check_positive("--batch", args.batch)
    if not os.path.isfile(args.file):
        raise _usage(f"{args.file}: no such file", "file_unreadable")
    service = _open_service()
    _importable(service, args.authority, ctype)
    return service, ctype, fmt


@_run
def records_import(args: argparse.Namespace) -> int:
    """``elicence issuer records import``."""
    service, ctype, fmt = _prepare_import(args)
    show = _progress_enabled(args)
    checked = _validate_file(service, args.authority, ctype, args.file, fmt, args.batch, show)
    written = [0]
    try:
        seconds = _write_file(service, args.authority, ctype, args.file, fmt, args.batch, checked, show, written)
    except Exception:
        if written[0]:
            print(f"elicence: {written[0]} of {checked.count} records were written before the failure; "
                  "importing the file again replaces them", file=sys.stderr)
        raise
    total = checked.seconds + seconds
    print(f"imported {checked.count} {ctype.slug} records into {args.authority} in {total:.1f} s "
          f"({_rate(checked.count, total)}; validation {checked.seconds:.1f} s, writing {seconds:.1f} s)")
    return EXIT_OK


@_run
def offers_create(args: argparse.Namespace) -> int:
    """``elicence issuer offers create``."""
    ctype = _credential_type(args.type)
    qr_format = None
    if args.qr:
        qr_format = Path(args.qr).suffix.lower()
        if qr_format not in (".png", ".svg"):
            raise _usage(f"--qr {args.qr}: the QR file must end in .png or .svg")
    service = _open_service()
    _check_expires_in(service, args.expires_in)
    # The command line acts for the authority itself ("cli" in the audit log), not for an operator.
    (offer,) = service.create_offers_bulk(args.authority, type_name=ctype.slug, usccs=[args.uscc],
                                         expires_in=args.expires_in, actor="cli")
    print(f"offer         {offer.offer_id}")
    print(f"uscc          {offer.uscc} ({offer.configuration_id})")
    print(f"PIN           {offer.tx_code}   (deliver it out of band, not with the link)")
    print(f"expires at    {_iso(offer.expires_at)}")
    print(f"by value      {offer.offer_uri}")
    print(f"by reference  {offer.offer_reference_uri}")
    if args.qr or args.terminal:
        from credentials import qr

        if args.qr:
            data = qr.render_png(offer.offer_reference_uri) if qr_format == ".png" else qr.render_svg(offer.offer_reference_uri)
            try:
                Path(args.qr).write_bytes(data) if isinstance(data, bytes) else Path(args.qr).write_text(data, encoding="utf-8")
            except OSError as exc:
                raise _usage(f"cannot write {args.qr}: {exc.strerror}", "file_unwritable") from None
            print(f"QR code       {args.qr}")
        if args.terminal:
            sys.stdout.write(qr.render_terminal(offer.offer_reference_uri))
    return EXIT_OK


OFFER_COLUMNS = ("uscc", "offer_id", "offer_reference_uri", "tx_code", "expires_at")


def _sync(out: TextIO) -> None:
    """Put what was written to ``out`` on disk (the rows of a committed batch must survive a crash)."""
    out.flush()
    os.fsync(out.fileno())


def _reopen_offers(path: str, usccs: Mapping[str, int]) -> tuple[TextIO, dict[str, str]]:
    """Open the offers file of an interrupted ``issue-bulk`` for appending; returns it and its rows
    (USCC -> offer id). A torn last row (no line end: the process died while writing it) is cut off,
    so its record is offered anew. Refuses (``offers_file_mismatch``) a file that is not an offers
    file of this record file: another header, a row that does not parse, a USCC not in the record
    file or listed twice."""
    try:
        fh = open(path, "r+", encoding="utf-8", newline="")
    except OSError as exc:
        raise _usage(f"cannot open {path}: {exc.strerror}", "file_unwritable") from None
    try:
        os.fchmod(fh.fileno(), 0o600)
        try:
            text = fh.read()
            whole = text[: text.rfind("\n") + 1]  # complete lines only
            rows = list(csv.reader(io.StringIO(whole), strict=True))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise _usage(f"{path} is not an offers file of issue-bulk ({exc})", "offers_file_mismatch") from None
        if rows and tuple(rows[0]) != OFFER_COLUMNS:
            raise _usage(f"{path} is not an offers file of issue-bulk (its header is not {','.join(OFFER_COLUMNS)})",
                         "offers_file_mismatch")
        done: dict[str, str] = {}
        for line, row in enumerate(rows[1:], 2):
            if len(row) != len(OFFER_COLUMNS) or row[0] not in usccs or row[0] in done:
                why = ("is not an offers row" if len(row) != len(OFFER_COLUMNS) else
                       f"lists USCC {row[0]} a second time" if row[0] in done else
                       f"lists USCC {row[0]}, which is not in the record file")
                raise _usage(f"{path}: line {line} {why}; it is not the offers file of this record file",
                             "offers_file_mismatch")
            done[row[0]] = row[1]
        fh.seek(0)
        fh.truncate(len(whole.encode("utf-8")))
        fh.seek(0, os.SEEK_END)
        if not rows:
            csv.writer(fh, lineterminator="\n").writerow(OFFER_COLUMNS)
        _sync(fh)
    except BaseException:
        fh.close()
        raise
    return fh, done


@_run
def issue_bulk(args: argparse.Namespace) -> int:
    """``elicence issuer issue-bulk``."""
    resume = args.resume
    reopen = resume and os.path.lexists(args.out)
    if os.path.lexists(args.out) and not resume:
        raise _usage(f"{args.out} exists; refusing to overwrite an offers file (to finish the job it belongs to, "
                     "run the same command with --resume)", "file_exists")
    service, ctype, fmt = _prepare_import(args)
    _check_expires_in(service, args.expires_in)
    # The PINs travel by post or SMS from a list: the service's default (half an hour, for an offer
    # made while the enterprise waits) would expire before they arrive.
    expires_in = service.policy.max_offer_ttl if args.expires_in is None else args.expires_in
    show = _progress_enabled(args)
    started = time.perf_counter()
    checked = _validate_file(service, args.authority, ctype, args.file, fmt, args.batch, show)
    if reopen:
        out, done = _reopen_offers(args.out, checked.usccs)
    else:
        out, done = _open_new(args.out), {}
        csv.writer(out, lineterminator="\n").writerow(OFFER_COLUMNS)
        _sync(out)
    todo = [u for u in checked.usccs if u not in done]
    written, offered = [0], 0
    try:
        with out:
            writer = csv.writer(out, lineterminator="\n")
            import_seconds = _write_file(service, args.authority, ctype, args.file, fmt, args.batch, checked, show,
                                         written, skip=done)
            t0 = time.perf_counter()
            bar = Progress("offering  ", total=len(todo), enabled=show)
            try:
                for usccs in _batched(todo, args.batch):
                    # On resume, an open offer of one of these records is one whose PIN never reached the
                    # file (the process died between the commit and the write): withdrawn, then made anew.
                    offers = service.create_offers_bulk(args.authority, type_name=ctype.slug, usccs=usccs,
                                                        expires_in=expires_in, actor="cli", replace_open=resume)
                    writer.writerows((o.uscc, o.offer_id, o.offer_reference_uri, o.tx_code, _iso(o.expires_at))
                                     for o in offers)
                    _sync(out)
                    offered += len(offers)
                    bar.advance(len(offers))
            finally:
                bar.close()
            offer_seconds = time.perf_counter() - t0
    except BaseException:
        if offered == 0 and not done:
            Path(args.out).unlink(missing_ok=True)
        print(f"elicence: stopped after {written[0]} of {checked.count} records written and {len(done) + offered} "
              f"offers listed in {args.out}; finish with the same command and --resume", file=sys.stderr)
        raise
    total = time.perf_counter() - started
    kept = f"; {len(done)} kept from the interrupted run" if resume else ""
    print(f"issued {offered} {ctype.slug} offers for {args.authority} in {total:.1f} s ({_rate(offered, total)}{kept})")
    print(f"  validation {checked.seconds:.1f} s, records {import_seconds:.1f} s, offers {offer_seconds:.1f} s")
    print(f"  offers with their PINs: {args.out} (mode 0600; deliver each PIN out of band)")
    return EXIT_OK


# --- the parser -----------------------------------------------------------------------------------------

_SETTINGS_NOTE = ("Database, KEK and public URL come from ELICENCE_DATABASE_URL, ELICENCE_KEK / ELICENCE_KEK_FILE "
                  "and ELICENCE_PUBLIC_URL (embedded SQLite in var/ by default).")
_EXITS = "Exit codes: 0 done, 1 refused input (the error code and the line are printed), 2 usage or settings."


def _parser(sub: Any, name: str, help_text: str, description: str, handler: Any | None = None) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=description, epilog=_EXITS if handler else None)
    if handler is not None:
        p.set_defaults(handler=handler)
    return p


def _add_file_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="the record file (.csv, .json or .jsonl)")
    p.add_argument("--authority", required=True, metavar="SLUG", help="the issuing authority (its slug)")
    p.add_argument("--type", default=DEFAULT_TYPE, metavar="TYPE", help=f"credential type of the records (default {DEFAULT_TYPE})")
    p.add_argument("--format", choices=FORMATS, help="file format (default: from the extension)")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH, metavar="N",
                   help=f"records per transaction (default {DEFAULT_BATCH})")
    p.add_argument("--progress", action="store_true", help="show the progress bar even when stderr is not a terminal")


def add_issuer_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``issuer`` (authority, operator, records, offers, issue-bulk) to the CLI's sub-parsers."""
    issuer = subparsers.add_parser(
        "issuer",
        help="issuing authority tools: authorities, operators, records, offers, bulk issuance",
        description="Tools of the issuing authority, run against the deployment's database. " + _SETTINGS_NOTE,
    )
    groups = issuer.add_subparsers(dest="group", required=True, metavar="GROUP")

    authority = _parser(groups, "authority", "create and list issuing authorities", "Issuing authorities.")
    acts = authority.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = _parser(acts, "create", "register an issuing authority with its first signing key",
                     "Register an issuing authority (credential issuer <public URL>/issuers/<slug>) with the credential "
                     "types it issues and a first ES256 signing key in the encrypted keystore. " + _SETTINGS_NOTE,
                     authority_create)
    create.add_argument("--slug", required=True, help="short name: a-z, 0-9 and '-' (e.g. sh-amr)")
    create.add_argument("--name-zh", required=True, metavar="NAME", help="name in Chinese (上海市市场监督管理局)")
    create.add_argument("--name-en", required=True, metavar="NAME", help="name in English")
    create.add_argument("--type", dest="types", action="append", required=True, metavar="TYPE",
                        help="a credential type it issues (repeatable): business-licence, food-business-permit, "
                        "staff-authorisation, ...")
    create.add_argument("--region", default="", metavar="CODE", help="GB/T 2260 division code (e.g. 310000)")
    create.add_argument("--status-list-size", type=int, metavar="N", help="entries per status list (default 131072)")
    _parser(acts, "list", "list the authorities of the deployment",
            "List every issuing authority: slug, credential issuer identifier, names, region, types.", authority_list)

    operator = _parser(groups, "operator", "create operators (admin API keys)", "Operators of an authority.")
    ops = operator.add_subparsers(dest="action", required=True, metavar="ACTION")
    op = _parser(ops, "create", "create an operator and print its API key once",
                 "Create an operator of an authority: a member of staff or a system that may use the authority's "
                 "admin API. Prints the operator id and its API key, once (only a hash is stored).", operator_create)
    op.add_argument("--authority", required=True, metavar="SLUG", help="the authority it acts for")
    op.add_argument("--name", required=True, help="who or what it is (shown in listings)")

    records = _parser(groups, "records", "generate and import registry records", "Registry records.")
    recs = records.add_subparsers(dest="action", required=True, metavar="ACTION")
    gen = _parser(recs, "generate", "write realistic synthetic records",
                  "Write COUNT synthetic, realistic records (valid USCCs with both check characters, Chinese "
                  "names, real districts and addresses, business scopes in catalogue wording; no USCC twice in "
                  "a file) as CSV (header of dotted claim paths), a JSON array or JSON lines. The same seed "
                  "gives the same file.", records_generate)
    gen.add_argument("--count", type=int, required=True, metavar="N", help="how many records")
    gen.add_argument("--seed", type=int, metavar="K", help="random seed (default: random, printed)")
    gen.add_argument("--type", default=DEFAULT_TYPE, metavar="TYPE",
                     help=f"{' or '.join(_GENERATED_TYPES)} (default {DEFAULT_TYPE})")
    gen.add_argument("--format", choices=FORMATS, help="file format (default: from the extension of --out)")
    gen.add_argument("--out", required=True, metavar="FILE", help="where to write the records")
    gen.add_argument("--force", action="store_true", help="replace --out if it exists")
    gen.add_argument("--progress", action="store_true", help="show the progress bar even when stderr is not a terminal")
    imp = _parser(recs, "import", "validate and import a record file, all or nothing",
                  "Validate every record of FILE against its type's schema and the GB 32100 USCC check (and no "
                  "USCC twice), then store them (a record with a known USCC is replaced). A bad record stops the "
                  "import before anything is written: its line (CSV, JSONL) or element number (JSON) and the "
                  "reason are printed. CSV: UTF-8 with or without BOM, header of dotted claim paths "
                  "(registration.business_term.from, ...), empty cell = absent (null where the schema allows "
                  "null), true/false for booleans. " + _SETTINGS_NOTE, records_import)
    _add_file_options(imp)

    offers = _parser(groups, "offers", "create credential offers", "Credential offers (OpenID4VCI).")
    ofs = offers.add_subparsers(dest="action", required=True, metavar="ACTION")
    oc = _parser(ofs, "create", "create a credential offer for one imported record",
                 "Create an OpenID4VCI credential offer (pre-authorised code with a PIN) for the record of USCC. "
                 "Prints the offer id, the deep links by value and by reference, the PIN (deliver it out of "
                 "band) and when the offer expires; optionally a QR code of the by-reference deep link.",
                 offers_create)
    oc.add_argument("--authority", required=True, metavar="SLUG", help="the issuing authority")
    oc.add_argument("--uscc", required=True, metavar="USCC", help="the enterprise's unified social credit code")
    oc.add_argument("--type", default=DEFAULT_TYPE, metavar="TYPE", help=f"credential type (default {DEFAULT_TYPE})")
    oc.add_argument("--expires-in", type=int, metavar="SECONDS", help="offer lifetime (default 1800; 60 to 30 days)")
    oc.add_argument("--qr", metavar="FILE", help="write the QR code of the by-reference link to FILE (.png or .svg)")
    oc.add_argument("--terminal", action="store_true", help="print the QR code in the terminal")

    bulk = _parser(groups, "issue-bulk", "import a registry file and create one offer per record",
                   "Bulk issuance: validate every record of FILE (nothing is written if one is bad), import them, "
                   "and create one credential offer per record, in batches. Writes OUT (CSV: uscc, offer_id, "
                   "offer_reference_uri, tx_code, expires_at) with mode 0600, since it holds the PINs the authority "
                   "delivers out of band; each batch's rows are written and synced to disk as soon as the batch "
                   "commits, so an interrupted run (even kill -9) is finished by the same command with --resume. "
                   "Prints the total time and rate. " + _SETTINGS_NOTE, issue_bulk)
    _add_file_options(bulk)
    bulk.add_argument("--out", required=True, metavar="OFFERS.csv",
                      help="the offers file to create (never overwritten; see --resume)")
    bulk.add_argument("--resume", action="store_true",
                      help="finish an interrupted run (killed, database lost) of the same FILE: the rows already in "
                      "OUT are kept (a torn last row is dropped), records are imported and offered only where OUT has "
                      "no row, and an open offer of such a record is withdrawn first, since its PIN never reached "
                      "OUT. Refused if OUT is not an offers file of FILE; if OUT is missing, every record is offered "
                      "(withdrawing its open offers)")
    bulk.add_argument("--expires-in", type=int, metavar="SECONDS",
                      help="offer lifetime (default: the longest allowed, 30 days, since the PINs go by post; min 60)")
    return issuer
