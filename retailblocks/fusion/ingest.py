"""External signals (social engagement, marketplace activity, store visits) read from JSON Lines or CSV.

Each record names an identity (``kind:value``), a ``type`` (``social.like``), a timestamp ``at`` with its
UTC offset, and optionally a ``channel``, a ``payload`` object and an ``id``. A bad line is reported with
its number and reason and skipped; the good ones are kept. A record's idempotency key is its ``id`` when
given, else a hash of its content, so ingesting a file twice adds nothing the second time.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from retailblocks.errors import InvalidInput, InvalidValue
from retailblocks.fusion.tables import insert_new, timeline
from retailblocks.fusion.views import parse_identity
from retailblocks.manifest.readers import suggestion
from retailblocks.model import Identity

if TYPE_CHECKING:
    from retailblocks.assembly.stack import Stack

FORMATS = ("jsonl", "csv")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
_FIELDS = ("id", "identity", "type", "at", "channel", "payload")
_TYPE = re.compile(r"[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+")
# These kinds come from the stack's own ledgers; an outside file may not claim them.
_RESERVED = ("order.", "points.", "promotion.", "coupon.")
MAX_BYTES = 50 * 1024 * 1024


@attrs.frozen
class Signal:
    key: str
    identity: Identity
    type: str
    at: datetime
    channel: str | None
    payload: Mapping[str, Any]


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


def read_text(path: Path) -> str:
    """The file's text, or one clear error; nothing is read twice and nothing is written."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise InvalidInput(f"{path} is larger than {MAX_BYTES // (1024 * 1024)} MB; split it")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path} is a directory, not a file of signals") from None
    except UnicodeDecodeError as error:
        raise InvalidInput(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise InvalidInput(f"cannot read {path}: {error.strerror}") from None


def parse(text: str, fmt: str, channel_ids: Sequence[str]) -> tuple[list[Signal], list[BadLine]]:
    """The good records and the bad lines of a file's text."""
    signals: list[Signal] = []
    bad: list[BadLine] = []
    for number, record in _records(text, fmt):
        try:
            if isinstance(record, str):
                raise InvalidValue(record)
            signals.append(_signal(record, channel_ids))
        except InvalidValue as error:
            bad.append(BadLine(number, str(error)))
    return signals, bad


def _records(text: str, fmt: str) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    """(line number, record or the reason it cannot be read) for every non-blank record."""
    if fmt == "jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                yield number, f"not JSON: {error.msg} at column {error.colno}"
                continue
            yield (
                number,
                record if isinstance(record, dict) else f"expected a JSON object (got {type(record).__name__})",
            )
        return
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [column for column in ("identity", "type", "at") if column not in header]
    if missing:
        # Without these columns no line could be read: the file is refused whole, nothing is kept.
        raise InvalidInput(f"the CSV header lacks the column(s) {', '.join(missing)} (header: {', '.join(header)})")
    for row in reader:
        number = reader.line_num
        if None in row:
            yield number, f"more values than the {len(header)} columns of the header"
            continue
        if not any(value and value.strip() for value in row.values()):
            continue
        yield number, _csv_record(row)


def _csv_record(row: Mapping[str, str]) -> Mapping[str, Any] | str:
    # Columns beyond the known fields are the payload, so a spreadsheet export needs no JSON column.
    record: dict[str, Any] = {k: v for k, v in row.items() if k in _FIELDS and k != "payload" and v != ""}
    payload: dict[str, Any] = {k: v for k, v in row.items() if k not in _FIELDS and v not in ("", None)}
    if row.get("payload"):
        try:
            extra = json.loads(row["payload"])
        except json.JSONDecodeError as error:
            return f"the payload column is not JSON: {error.msg}"
        if not isinstance(extra, dict):
            return "the payload column must hold a JSON object"
        payload.update(extra)
    record["payload"] = payload
    return record


def _signal(record: Mapping[str, Any], channel_ids: Sequence[str]) -> Signal:
    for key in record:
        if key not in _FIELDS:
            hint = suggestion(key, _FIELDS) or " (fields: " + ", ".join(_FIELDS) + ")"
            raise InvalidValue(f"unknown field {key!r}{hint}")
    missing = [key for key in ("identity", "type", "at") if key not in record]
    if missing:
        raise InvalidValue(f"missing {', '.join(repr(key) for key in missing)}")
    identity = parse_identity(_text(record, "identity"))
    kind = _text(record, "type")
    if not _TYPE.fullmatch(kind):
        raise InvalidValue(f"type must be dotted lower-case words like 'social.like' (got {kind!r})")
    if kind.startswith(_RESERVED):
        raise InvalidValue(f"type {kind!r} is the stack's own; external signals use other names (e.g. social.share)")
    at = _timestamp(_text(record, "at"))
    channel = record.get("channel")
    if channel is not None:
        channel = _text(record, "channel")
        if channel not in channel_ids:
            raise InvalidValue(
                f"unknown channel {channel!r}{suggestion(channel, channel_ids)} (channels: {', '.join(channel_ids)})"
            )
    payload = record.get("payload", {})
    if not isinstance(payload, dict):
        raise InvalidValue(f"payload must be an object (got {type(payload).__name__})")
    content = {"identity": str(identity), "type": kind, "at": at.isoformat(), "channel": channel, "payload": payload}
    explicit = record.get("id")
    if explicit is not None and (not isinstance(explicit, str | int) or not str(explicit).strip()):
        raise InvalidValue(f"id must be a non-empty string or number (got {explicit!r})")
    key = (
        f"id:{explicit}"
        if explicit is not None
        else "sha256:" + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    )
    return Signal(key=key[:190], identity=identity, type=kind, at=at, channel=channel, payload=payload)


def _text(record: Mapping[str, Any], key: str) -> str:
    value = record[key]
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"{key} must be a non-empty string (got {value!r})")
    return value.strip()


def _timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidValue(f"at must be an ISO 8601 timestamp like 2026-06-18T10:30:00+08:00 (got {text!r})") from None
    if moment.tzinfo is None:
        raise InvalidValue(f"at has no UTC offset (got {text!r}); add one, e.g. Z or +08:00")
    return moment


def ingest(stack: Stack, signals: Sequence[Signal], bad: Sequence[BadLine] = ()) -> IngestReport:
    """Resolve each signal's identity to a member and add it to the timeline, all in one transaction.

    Identities are resolved without enrolling anyone: a signal from a stranger is kept under its identity
    and joins a member's timeline once that identity is linked to them.
    """
    added = resolved = 0
    with stack.context(flow="ingest") as ctx:
        for signal in signals:
            member = stack.hooks.membership_identify(ctx, [signal.identity], False)
            resolved += member is not None
            added += insert_new(
                ctx.db,
                timeline,
                {
                    "key": f"signal:{signal.key}",
                    "member_id": member.id if member is not None else None,
                    "identity": str(signal.identity),
                    "kind": signal.type,
                    "channel": signal.channel,
                    "order_id": None,
                    "amount": None,
                    "currency": None,
                    "detail": dict(signal.payload),
                    "source": "signal",
                    "occurred_at": signal.at,
                },
            )
    return IngestReport(
        read=len(signals) + len(bad),
        added=added,
        duplicates=len(signals) - added,
        resolved=resolved,
        bad=tuple(bad),
    )
