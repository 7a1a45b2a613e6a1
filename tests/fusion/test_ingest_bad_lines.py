"""Ingesting files with bad lines (issue 11): every bad line, whatever is wrong with it, is reported as
FILE:LINE: reason; the good lines are kept; exit status 2; the same on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retailblocks.fusion import catch_up, ingest, member_view
from retailblocks.fusion.ingest import parse
from retailblocks.fusion.tables import timeline
from retailblocks.model import Identity
from retailblocks.stack import Stack
from tests.fusion.test_commands import run
from tests.helpers import cart

PHONE = "phone:+8613800000001"
CHANNELS = ["web", "market", "store-a"]


def good(tag: str, **fields: Any) -> bytes:
    record = {"identity": PHONE, "type": "social.like", "at": "2026-03-01T10:30:00+08:00", "id": tag, **fields}
    text = json.dumps(record, ensure_ascii=False)
    # A lone surrogate can only be written as an escape; everything else is written raw, as a file would.
    return (text if text.isascii() or not any("\ud800" <= c <= "\udfff" for c in text) else json.dumps(record)).encode()


def bad(**fields: Any) -> bytes:
    return good(f"bad-{uuid.uuid4().hex}", **fields)


def raw(payload: str) -> bytes:
    """A line whose payload is written as is, for what json.dumps would never write."""
    return (
        b'{"identity": "phone:+8613800000001", "type": "social.like", "at": "2026-03-01T10:30:00Z", "payload": '
        + payload.encode()
        + b"}"
    )


# (what is wrong, the line, a fragment of the reason). Every kind issue 11 found, and a few neighbours.
BAD_KINDS: list[tuple[str, bytes, str]] = [
    ("identity not a phone", bad(identity="phone:abc"), "phone identity must be digits"),
    ("40-digit phone", bad(identity="phone:" + "1" * 40), "between 3 and 20 digits"),
    ("escaped NUL in identity", bad(identity="phone:+86\x0013800000001"), "NUL"),
    ("identity over 300 characters", bad(identity="social:" + "x" * 400), "at most 300"),
    ("lone surrogate in identity", bad(identity="social:\ud800"), "lone surrogate"),
    ("type over 64 characters", bad(type="social." + "a" * 80), "at most 64"),
    ("NaN in the payload", raw('{"score": NaN}'), "NaN"),
    ("Infinity in the payload", raw('{"score": -Infinity}'), "Infinity"),
    ("1e400 in the payload", raw('{"score": 1e400}'), "1e400"),
    ("integer of 5000 digits", raw('{"n": ' + "7" * 5000 + "}"), "digits"),
    ("deeply nested JSON", raw('{"x": ' + "[" * 100_000 + "]" * 100_000 + "}"), "nested deeper"),
    ("NUL in a payload string", raw('{"note": "a\\u0000b"}'), "NUL"),
    ("lone surrogate in a payload key", raw('{"\\udc80": 1}'), "lone surrogate"),
    ("invalid UTF-8", b'{"identity": "phone:+8613800000001", "note": "\xff\xfe"}', "not UTF-8"),
    ("invalid UTF-8 alone", b"\xc3\x28 caf\xe9", "not UTF-8"),
    ("year 1 with an offset", bad(at="0001-01-01T00:00:00+01:00"), "1970"),
    ("year 9999 ending past UTC", bad(at="9999-12-31T23:00:00-05:00"), "1970"),
    ("before 1970", bad(at="1969-12-31T23:59:59Z"), "1970"),
    ("NUL in an id", good("tm-\x00-1"), "NUL"),
    ("id true", bad(id=True), "id must be"),
    ("not an object", b"[1, 2]", "expected a JSON object"),
    ("not JSON", b"this is not json", "not JSON"),
    ("rich markup in the reason", bad(channel="[/bold]"), "unknown channel '[/bold]'"),
]


def bad_file(path: Path) -> tuple[Path, dict[int, str], list[str]]:
    """Good lines (with raw U+2028, U+2029 and U+0085 in them) between the bad kinds; the bad lines' numbers
    with their expected reasons, and the good lines' ids."""
    lines: list[bytes] = []
    expected: dict[int, str] = {}
    good_ids: list[str] = []
    for number, (_, line, reason) in enumerate(BAD_KINDS):
        tag = f"good-{number}"
        lines.append(good(tag, payload={"note": "line\u2028separator\u2029para\x85next"}))
        good_ids.append(tag)
        lines.append(line)
        expected[len(lines)] = reason
    lines.append(good("good-last"))
    good_ids.append("good-last")
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, expected, good_ids


def stored_keys(stack: Stack) -> set[str]:
    with stack.context(flow="test", read_only=True) as ctx:
        return set(ctx.db.execute(sa.select(timeline.c.key).where(timeline.c.source == "signal")).scalars())


@pytest.fixture
def manifest(stack: Stack) -> str:
    stack.checkout(cart(("TEA", 1), channel="store-a", identities=(Identity("phone", "+8613800000001"),)), key="a")
    path = str(stack.manifest.path)
    status, _, err = run("assemble", "-m", path)  # operator commands open only an assembled stack
    assert status == 0, err
    return path


def test_every_kind_of_bad_line_is_named_and_the_good_lines_are_kept(
    stack: Stack, manifest: str, tmp_path: Path
) -> None:
    path, expected, good_ids = bad_file(tmp_path / "bad.jsonl")
    status, out, err = run("ingest", "-m", manifest, str(path), "--json")
    assert "internal error" not in err
    assert "Traceback" not in err
    assert status == 2, err
    summary = json.loads(out)
    reasons = {b["line"]: b["reason"] for b in summary["bad"]}
    assert sorted(reasons) == sorted(expected)
    wrong = {
        f"{kind} (line {n})": reasons[n]
        for n, (kind, _, _) in zip(expected, BAD_KINDS, strict=True)
        if expected[n] not in reasons[n]
    }
    assert wrong == {}
    for number in expected:
        assert f"{path}:{number}: " in err
    assert summary["added"] == len(good_ids)
    assert stored_keys(stack) >= {f"signal:id:{tag}" for tag in good_ids}

    status, out, err = run("ingest", "-m", manifest, str(path), "--json")
    again = json.loads(out)
    assert (status, again["added"], again["duplicates"], len(again["bad"])) == (2, 0, len(good_ids), len(expected))
    # Nothing the file held leaves the member unreadable afterwards.
    status, out, err = run("members", "-m", manifest, "--identity", PHONE, "--json")
    assert status == 0, err
    assert sum(1 for e in json.loads(out)["timeline"] if e["source"] == "signal") == len(good_ids)


def test_csv_bad_lines_are_named_and_the_good_ones_kept(stack: Stack, manifest: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(
        b"id,identity,type,at,payload\n"
        b"c1,phone:+8613800000001,social.like,2026-03-01T10:00:00Z,\n"
        b"c2,phone:+8613800000001,social.like,2026-03-01T10:00:00Z,x" + b"y" * (200 * 1024) + b"\n"
        b"c3,phone:+8613800000001,social.like,2026-03-01T10:00:00Z,\n"
        b"c4,phone:\xff\xfe,social.like,2026-03-01T10:00:00Z,\n"
        b'c5,phone:+8613800000001,social.like,2026-03-01T10:00:00Z,"{""a"": NaN}"\n'
        b"c6,phone:+8613800000001,social.like,2026-03-01T10:00:00Z,\n"
    )
    status, out, err = run("ingest", "-m", manifest, str(path), "--json")
    assert "internal error" not in err
    assert status == 2, err
    summary = json.loads(out)
    assert [b["line"] for b in summary["bad"]] == [3, 5, 6]
    assert summary["added"] == 3
    assert stored_keys(stack) == {"signal:id:c1", "signal:id:c3", "signal:id:c6"}


def test_raw_line_separators_inside_json_are_not_line_breaks() -> None:
    lines = [good(f"g{n}", payload={"note": f"a{sep}b"}) for n, sep in enumerate("\u2028\u2029\x85\x0c\x1c")]
    lines.append(b"not json")
    # As text, the way a file was read before: str.splitlines would break these lines apart.
    signals, bad_lines = parse(b"\n".join(lines).decode(), "jsonl", CHANNELS)
    assert [s.payload["note"][1] for s in signals] == ["\u2028", "\u2029", "\x85", "\x0c", "\x1c"]
    assert [b.line for b in bad_lines] == [6]


def view(stack: Stack, identity: str):  # type: ignore[no-untyped-def]
    catch_up(stack)
    with stack.context(flow="test", read_only=True) as ctx:
        return member_view(stack, ctx, identity=identity)


def test_times_are_stored_in_utc_so_timelines_keep_their_order(stack: Stack) -> None:
    stack.checkout(cart(("TEA", 1), channel="store-a", identities=(Identity("phone", "+8613800000001"),)), key="t")
    text = b"\n".join(
        [
            good("later", type="social.share", at="2026-03-01T03:00:00Z"),
            good("earlier", type="social.like", at="2026-03-01T10:30:00+08:00"),
        ]
    )
    report = ingest(stack, *parse(text, "jsonl", CHANNELS))
    assert (report.added, report.bad) == (2, ())
    _, entries = view(stack, PHONE)
    signals = [(e.kind, e.at.isoformat()) for e in entries if e.source == "signal"]
    assert signals == [("social.like", "2026-03-01T02:30:00+00:00"), ("social.share", "2026-03-01T03:00:00+00:00")]


def test_long_ids_sharing_a_prefix_are_two_signals_and_stay_idempotent(stack: Stack) -> None:
    prefix = "x" * 187
    text = b"\n".join([good(prefix + "a" * 10), good(prefix + "b" * 10), good("x" * 500)])
    first = ingest(stack, *parse(text, "jsonl", CHANNELS))
    second = ingest(stack, *parse(text, "jsonl", CHANNELS))
    assert (first.added, first.duplicates, first.bad) == (3, 0, ())
    assert (second.added, second.duplicates) == (0, 3)
    assert all(len(key) <= 200 for key in stored_keys(stack))


def test_a_bad_identity_is_reported_at_its_line_when_signals_are_ingested(stack: Stack) -> None:
    text = b"\n".join([good("one"), bad(identity="phone:abc"), good("two"), bad(identity="phone:" + "9" * 40)])
    report = ingest(stack, *parse(text, "jsonl", CHANNELS))
    assert [b.line for b in report.bad] == [2, 4]
    assert report.added == 2
    assert report.read == 4


# -- the property: random bytes between good lines --------------------------------------------------

# The membership block refuses these, when the signals are ingested; parsing alone lets them through.
REFUSED_BY_MEMBERSHIP = ("identity not a phone", "40-digit phone")


def random_line(with_membership: bool) -> st.SearchStrategy[bytes]:
    kinds = [line for kind, line, _ in BAD_KINDS if with_membership or kind not in REFUSED_BY_MEMBERSHIP]
    return st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")) | st.sampled_from(kinds)


def blank(line: bytes, number: int) -> bool:
    try:
        # A byte order mark opening the file is not part of its first line.
        return not line.decode("utf-8-sig" if number == 1 else "utf-8").strip()
    except UnicodeDecodeError:
        return False


def mixed(lines: Sequence[tuple[bool, bytes]]) -> tuple[bytes, list[int], list[int]]:
    """The file, the numbers of its good lines and those of its (non-blank) random lines."""
    goods = [n for n, (is_good, _) in enumerate(lines, start=1) if is_good]
    bads = [n for n, (is_good, line) in enumerate(lines, start=1) if not is_good and not blank(line, n)]
    return b"\n".join(line for _, line in lines), goods, bads


def lines_strategy(
    tag: st.SearchStrategy[str], *, with_membership: bool
) -> st.SearchStrategy[list[tuple[bool, bytes]]]:
    good_line = st.builds(
        lambda t, n, sep: (True, good(f"{t}-{n}", payload={"n": n, "note": f"a{sep}b"})),
        tag,
        st.integers(0, 10**6),
        st.sampled_from(["", "\u2028", "\u2029", "\x85", "\r", "\x1e"]),
    )
    bad_line = random_line(with_membership).map(lambda b: (False, b))
    return st.lists(good_line | bad_line, min_size=1, max_size=25, unique_by=lambda x: x[1])


@settings(max_examples=300, deadline=None)
@given(lines_strategy(st.just("p"), with_membership=False))
def test_random_bytes_between_good_lines_are_named_and_the_good_lines_kept(lines: list[tuple[bool, bytes]]) -> None:
    data, goods, bads = mixed(lines)
    signals, bad_lines = parse(data, "jsonl", CHANNELS)
    assert [s.line for s in signals] == goods
    assert [b.line for b in bad_lines] == bads


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=lines_strategy(st.builds(lambda: uuid.uuid4().hex), with_membership=True))
def test_random_bytes_between_good_lines_on_the_database(stack: Stack, lines: list[tuple[bool, bytes]]) -> None:
    data, goods, bads = mixed(lines)
    report = ingest(stack, *parse(data, "jsonl", CHANNELS))
    assert [b.line for b in report.bad] == bads
    assert report.added == len(goods)
    again = ingest(stack, *parse(data, "jsonl", CHANNELS))
    assert (again.added, again.duplicates) == (0, len(goods))
