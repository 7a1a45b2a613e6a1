"""External signals (social engagement, marketplace activity, store visits) read from JSON Lines or CSV.

Each record names an identity (``kind:value``), a ``type`` (``social.like``), a timestamp ``at`` with its
UTC offset, and optionally a ``channel``, a ``payload`` object and an ``id``.

Every bad line, whatever is wrong with it, is reported with its number and reason and skipped; the good
lines are kept. A line is judged on its own: the file is read as bytes and split on ``\\n`` alone (so the
line separators Unicode knows besides, U+2028, U+2029 and U+0085, stay inside the JSON strings they belong
to), and each line is decoded, parsed and checked by itself. Values a database could not store, or could
store on one database and not the other, are refused at their line rather than by the database:

* text longer than its column (identity 300, type 64 characters) or holding NUL or a lone surrogate;
* JSON nested deeper than :data:`MAX_DEPTH`, integers of more than :data:`MAX_INT_DIGITS` digits, and
  numbers JSON cannot carry (``NaN``, ``Infinity``, ``1e400``);
* a moment outside :data:`EARLIEST` … :data:`LATEST` (UTC). Moments are stored in UTC, so timelines sort
  the same on every database.

A record's idempotency key is its ``id`` when given (ids too long for the key column are hashed whole, never
cut, so two ids stay two keys), else a hash of its content. The good lines of a file are added in one
transaction, after every line has been judged; ingesting the same file again adds nothing.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from retailblocks.errors import InvalidInput, InvalidValue, suggestion
from retailblocks.fusion import aggregates
from retailblocks.fusion.memberships import after_signals
from retailblocks.fusion.tables import insert_new, timeline
from retailblocks.fusion.views import parse_identity
from retailblocks.hookspecs import membership
from retailblocks.manifest.conditions import SIGNAL_TYPE
from retailblocks.model import Identity
from retailblocks.model.limits import MAX_TEXT_LENGTH, check_text

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime

FORMATS = ("jsonl", "csv")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
_FIELDS = ("id", "identity", "type", "at", "channel", "payload")
_TYPE = SIGNAL_TYPE
# These kinds come from the stack's own ledgers; an outside file may not claim them.
_RESERVED = ("order.", "points.", "promotion.", "coupon.")
MAX_BYTES = 50 * 1024 * 1024

#: How deeply a line's JSON may nest. Python's parser recurses once per level and would crash long before
#: a real payload needs this many.
MAX_DEPTH = 32
#: The most digits an integer may have: far above any id or amount, far below Python's own limit (4300),
#: past which reading the stored payload back would fail.
MAX_INT_DIGITS = 64
#: The earliest and the latest moment a signal may carry, in UTC. Before the epoch a date is a mistake;
#: the latest is a day short of year 10000 so that a PostgreSQL session in any time zone reads it back.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)

_KEY_LENGTH = timeline.c.key.type.length  # type: ignore[attr-defined]
_IDENTITY_LENGTH: int = timeline.c.identity.type.length  # type: ignore[attr-defined]
_KIND_LENGTH: int = timeline.c.kind.type.length  # type: ignore[attr-defined]
_SIGNAL = "signal:"
_NO_LIMIT = MAX_BYTES
# A JSON string, so that brackets inside strings are not counted as nesting.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKET = re.compile(r"[\[\]{}]")


@attrs.frozen
class Signal:
    key: str
    identity: Identity
    type: str
    at: datetime
    channel: str | None
    payload: Mapping[str, Any]
    line: int = 0


@attrs.frozen
class BadLine:
    line: int
    reason: str


@attrs.frozen
class IngestReport:
    read: int
    added: int
    duplicates: int
    resolved: int
    bad: tuple[BadLine, ...]


def format_of(path: Path, given: str | None) -> str:
    if given is not None:
        return given
    found = _EXTENSIONS.get(path.suffix.lower())
    if found is None:
        raise InvalidValue(f"cannot tell the format of {path.name} from its extension; pass --format jsonl or csv")
    return found


def read_bytes(path: Path) -> bytes:
    """The file's bytes, or one clear error; nothing is read twice and nothing is written.

    Not decoded here: a line that is not UTF-8 is that line's error, not the file's.
    """
    try:
        if path.stat().st_size > MAX_BYTES:
            raise InvalidInput(f"{path} is larger than {MAX_BYTES // (1024 * 1024)} MB; split it")
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path} is a directory, not a file of signals") from None
    except OSError as error:
        raise InvalidInput(f"cannot read {path}: {error.strerror}") from None


def parse(data: bytes | str, fmt: str, channel_ids: Sequence[str]) -> tuple[list[Signal], list[BadLine]]:
    """The good records and the bad lines of a file's contents."""
    if isinstance(data, str):
        # surrogatepass: a lone surrogate in the text becomes bytes that are not UTF-8, refused at its line.
        data = data.encode("utf-8", "surrogatepass")
    signals: list[Signal] = []
    bad: list[BadLine] = []
    for number, record in _records(data, fmt):
        try:
            if isinstance(record, str):
                raise InvalidValue(record)
            signals.append(_signal(record, channel_ids, number))
        except InvalidValue as error:
            bad.append(BadLine(number, str(error)))
    return signals, bad


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    lines = data.split(b"\n")
    if lines and lines[0].startswith(b"\xef\xbb\xbf"):
        lines[0] = lines[0][3:]  # the byte order mark spreadsheet programs put before UTF-8
    return enumerate(lines, start=1)


def _undecodable(line: bytes, error: UnicodeDecodeError) -> str:
    return f"not UTF-8: byte 0x{line[error.start]:02x} at byte {error.start + 1} of the line ({error.reason})"


def _records(data: bytes, fmt: str) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    """(line number, record or the reason it cannot be read) for every non-blank record."""
    if fmt == "csv":
        yield from _csv_records(data)
        return
    for number, line in _lines(data):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as error:
            yield number, _undecodable(line, error)
            continue
        if not text.strip():
            continue
        try:
            record = load_json(text)
        except InvalidValue as error:
            yield number, str(error)
            continue
        yield (
            number,
            record if isinstance(record, dict) else f"expected a JSON object (got {type(record).__name__})",
        )


def load_json(text: str) -> Any:
    """``text`` as JSON, or InvalidValue saying why not, for any text: never RecursionError or ValueError."""
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(text) > MAX_DEPTH:
        raise InvalidValue(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as error:
        raise InvalidValue(f"not JSON: {error.msg} at column {error.colno}") from None
    except RecursionError:  # the depth check counts what json would; this is for an interpreter with less stack
        raise InvalidValue(f"JSON nested deeper than {MAX_DEPTH} levels") from None


def _depth(text: str) -> int:
    deepest = depth = 0
    for bracket in _BRACKET.finditer(_JSON_STRING.sub("", text)):
        depth += 1 if bracket.group() in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise InvalidValue(f"an integer has {len(text.lstrip('-'))} digits; at most {MAX_INT_DIGITS} are kept")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidValue(f"the number {_shown(text)} is too large for JSON to carry")
    return value


def _constant(name: str) -> Any:
    raise InvalidValue(f"{name} is not a JSON number; write null or leave the field out")


def _csv_records(data: bytes) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    # Undecodable bytes become lone surrogates (which UTF-8 text never holds), so the reader keeps the
    # file's lines and quoting, and the record holding them is refused below.
    texts = (line.decode("utf-8", "surrogateescape") + "\n" for _, line in _lines(data))
    reader = csv.reader(texts)
    try:
        header = next(reader, [])
    except csv.Error as error:
        raise InvalidInput(f"the CSV header cannot be read: {error}") from None
    if _escaped_byte(header) is not None:
        raise InvalidInput("the CSV header is not UTF-8 text")
    missing = [column for column in ("identity", "type", "at") if column not in header]
    if missing:
        # Without these columns no line could be read: the file is refused whole, nothing is kept.
        raise InvalidInput(f"the CSV header lacks the column(s) {', '.join(missing)} (header: {', '.join(header)})")
    while True:
        number = reader.line_num + 1  # a quoted value may span lines: the record is named by its first
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield number, f"not CSV: {error}"
            continue
        if not any(value.strip() for value in row):
            continue
        if len(row) > len(header):
            yield number, f"more values than the {len(header)} columns of the header"
            continue
        byte = _escaped_byte(row)
        if byte is not None:
            yield number, f"not UTF-8: byte 0x{byte:02x} cannot be decoded"
            continue
        yield number, _csv_record(dict(zip(header, [*row, *[""] * (len(header) - len(row))], strict=True)))


def _escaped_byte(values: Sequence[str]) -> int | None:
    for value in values:
        for char in value:
            if "\udc80" <= char <= "\udcff":
                return ord(char) - 0xDC00
    return None


def _csv_record(row: Mapping[str, str]) -> Mapping[str, Any] | str:
    # Columns beyond the known fields are the payload, so a spreadsheet export needs no JSON column.
    record: dict[str, Any] = {k: v for k, v in row.items() if k in _FIELDS and k != "payload" and v != ""}
    payload: dict[str, Any] = {k: v for k, v in row.items() if k not in _FIELDS and v != ""}
    if row.get("payload"):
        try:
            extra = load_json(row["payload"])
        except InvalidValue as error:
            return f"the payload column: {error}"
        if not isinstance(extra, dict):
            return "the payload column must hold a JSON object"
        payload.update(extra)
    record["payload"] = payload
    return record


def _signal(record: Mapping[str, Any], channel_ids: Sequence[str], line: int = 0) -> Signal:
    for key in record:
        if key not in _FIELDS:
            hint = (suggestion(key, _FIELDS) if len(key) <= 64 else "") or " (fields: " + ", ".join(_FIELDS) + ")"
            raise InvalidValue(f"unknown field {_shown(key)}{hint}")
    missing = [key for key in ("identity", "type", "at") if key not in record]
    if missing:
        raise InvalidValue(f"missing {', '.join(repr(key) for key in missing)}")
    identity = parse_identity(_text(record, "identity", _IDENTITY_LENGTH))
    kind = _text(record, "type", _KIND_LENGTH)
    if not _TYPE.fullmatch(kind):
        raise InvalidValue(f"type must be dotted lower-case words like 'social.like' (got {_shown(kind)})")
    if kind.startswith(_RESERVED):
        raise InvalidValue(f"type {kind!r} is the stack's own; external signals use other names (e.g. social.share)")
    at = _timestamp(_text(record, "at", 64))
    channel = record.get("channel")
    if channel is not None:
        channel = _text(record, "channel", _NO_LIMIT)
        if channel not in channel_ids:
            hint = suggestion(channel, channel_ids) if len(channel) <= 64 else ""
            raise InvalidValue(f"unknown channel {_shown(channel)}{hint} (channels: {', '.join(channel_ids)})")
    payload = record.get("payload", {})
    if not isinstance(payload, dict):
        raise InvalidValue(f"payload must be an object (got {type(payload).__name__})")
    _check_values(payload, "payload")
    # The moment as written, offset and all: the keys of files ingested before moments were stored in UTC
    # stay the same, so re-ingesting such a file still adds nothing.
    content = {"identity": str(identity), "type": kind, "at": at.isoformat(), "channel": channel, "payload": payload}
    explicit = record.get("id")
    if explicit is not None:
        key = _id_key(explicit)
    else:
        key = "sha256:" + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return Signal(
        key=key, identity=identity, type=kind, at=at.astimezone(UTC), channel=channel, payload=payload, line=line
    )


def _id_key(explicit: Any) -> str:
    if isinstance(explicit, bool) or not isinstance(explicit, str | int) or not str(explicit).strip():
        raise InvalidValue(f"id must be a non-empty string or number (got {_shown(explicit)})")
    text = check_text(str(explicit), "id", max_length=MAX_TEXT_LENGTH)
    key = f"id:{text}"
    if len(_SIGNAL + key) <= _KEY_LENGTH:
        return key
    # Hashed whole, never cut: two long ids that share a beginning are still two signals. The prefix
    # differs from "id:", so a hashed id cannot meet an id that happens to look like a hash.
    return "id-sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _check_values(value: Any, where: str) -> None:
    """Refuse strings either database would refuse or store differently (NUL, lone surrogates)."""
    if isinstance(value, str):
        check_text(value, where, max_length=_NO_LIMIT)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, f"a key of {where}", max_length=_NO_LIMIT)
            _check_values(item, f"{where}.{key}" if len(key) <= 64 else where)
    elif isinstance(value, list):
        for item in value:
            _check_values(item, where)


def _text(record: Mapping[str, Any], key: str, max_length: int) -> str:
    value = record[key]
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"{key} must be a non-empty string (got {_shown(value)})")
    return check_text(value.strip(), key, max_length=max_length)


def _shown(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut short: a reason quotes the line, and a line may be megabytes long."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidValue(
            f"at must be an ISO 8601 timestamp like 2026-06-18T10:30:00+08:00 (got {_shown(text)})"
        ) from None
    if moment.tzinfo is None:
        raise InvalidValue(f"at has no UTC offset (got {text!r}); add one, e.g. Z or +08:00")
    try:
        within = EARLIEST <= moment.astimezone(UTC) <= LATEST
    except OverflowError:  # the offset takes it past year 1 or 9999
        within = False
    if not within:
        raise InvalidValue(f"at must lie between {EARLIEST.date()} and {LATEST.date()} in UTC (got {text!r})")
    return moment


def ingest(stack: Runtime, signals: Sequence[Signal], bad: Sequence[BadLine] = ()) -> IngestReport:
    """Resolve each signal's identity to a member and add the signals to the timeline, in one transaction.

    A signal whose identity the membership block refuses (a phone that is not digits) joins ``bad`` at
    its line; the others are added. Every line was judged before this runs, so the transaction holds good
    lines only and commits them together; if the database fails, none is kept and running the same file
    again adds each once. A signal already there (same ``id`` or, without one, same content) is counted as
    a duplicate, never added twice.

    Identities are resolved without enrolling anyone: a signal from a stranger is kept under its identity
    and joins a member's timeline once that identity is linked to them.
    """
    added = resolved = 0
    refused: list[BadLine] = []
    named: set[str] = set()
    with stack.context(flow="ingest") as ctx:
        for signal in signals:
            try:
                # Without enrolling, the loyalty block only reads, and refuses an identity before it reads.
                member = stack.hooks.maybe(membership.membership_identify, ctx, [signal.identity], False)
            except InvalidInput as error:
                refused.append(BadLine(signal.line, str(error)))
                continue
            resolved += member is not None
            if member is not None:
                named.add(member.id)
            added += insert_new(
                ctx.db,
                timeline,
                {
                    "key": _SIGNAL + signal.key,
                    "member_id": member.id if member is not None else None,
                    "identity": str(signal.identity),
                    "kind": signal.type,
                    "channel": signal.channel,
                    "order_id": None,
                    "amount": None,
                    "currency": None,
                    "detail": dict(signal.payload),
                    "source": "signal",
                    # UTC, since SQLite keeps the wall time and drops the offset.
                    "occurred_at": signal.at.astimezone(UTC),
                },
            )
        # Segments counting signals see them as soon as they are committed, not at the member's next event.
        after_signals(stack, ctx, named)
        aggregates.after_signals(ctx, named)
    kept = len(signals) - len(refused)
    return IngestReport(
        read=len(signals) + len(bad),
        added=added,
        duplicates=kept - added,
        resolved=resolved,
        bad=tuple(sorted([*bad, *refused], key=lambda b: b.line)),
    )
