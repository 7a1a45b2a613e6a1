"""Idempotency over HTTP, as the IETF ``Idempotency-Key`` header draft describes and payment APIs do.

Every POST that changes state needs the header. The first request with a key records itself as running;
its response (status and body) is stored when it ends. A retry with the same key and the same body gets
the stored response again, marked ``Idempotent-Replayed: true``; the same key with another body is 422;
the same key while the first request still runs is 409 with ``Retry-After``. Keys belong to the API key
that sent them, so two channels can never collide. A request that ends in a 5xx stores nothing, so its
retry runs again — safely, because the flows underneath are idempotent on the same derived key. A row
left running by a server that died is taken over once its lease has run out.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from fastapi.responses import JSONResponse, Response

from retailblocks.clock import Clock
from retailblocks.errors import RetailBlocksError
from retailblocks.http.problems import PROBLEM_JSON, problem, problem_for
from retailblocks.storage.blocks_api import insert_if_absent, single_statement
from retailblocks.storage.prepared import Prepared
from retailblocks.storage.tables import http_requests

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
#: Printable ASCII without spaces, short enough that ``http:<api key id>:<key>`` is a valid flow key.
KEY_PATTERN = "^[\\x21-\\x7e]{1,80}$"
_KEY = re.compile(KEY_PATTERN)
RUNNING, DONE = "running", "done"
#: How long a request may run before a retry with its key may take it over (its server died).
LEASE = timedelta(minutes=2)


class KeyProblem(Exception):
    """The header is missing or malformed: 400 with this message."""


def check_key(value: str | None) -> str:
    if value is None:
        raise KeyProblem(f"this request changes state: send an {HEADER} header (1-80 printable ASCII characters)")
    if not _KEY.fullmatch(value):
        raise KeyProblem(f"the {HEADER} header must be 1-80 printable ASCII characters without spaces")
    return value


def request_hash(method: str, path: str, body: bytes) -> str:
    """What makes two requests "the same": method, path and the body's JSON value (so a client that
    re-serializes the same document differently is not refused)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        canonical = body.decode("utf-8", "replace")
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def flow_key(api_key_id: str, idempotency_key: str) -> str:
    """The key the flows see: the caller's key scoped by the API key that sent it."""
    return f"http:{api_key_id}:{idempotency_key}"


class IdempotentRequests:
    def __init__(self, engine: sa.Engine, clock: Clock):
        self._engine = engine
        self._clock = clock

    def run(self, api_key_id: str, key: str, fingerprint: str, handler: Callable[[], Response]) -> Response:
        """The stored response for ``key`` if there is one, else ``handler()``'s, stored."""
        claimed = self._claim(api_key_id, key, fingerprint)
        if claimed is not None:
            return claimed
        try:
            response = handler()
        except RetailBlocksError as error:
            # A refusal is an answer like any other: kept, so the retry hears it again.
            response = problem_for(error)
        except BaseException:
            self._forget(api_key_id, key)
            raise
        if response.status_code >= 500:
            self._forget(api_key_id, key)
        else:
            self._store(api_key_id, key, response)
        return response

    def _now(self) -> datetime:
        return self._clock.now()

    def _claim(self, api_key_id: str, key: str, fingerprint: str) -> Response | None:
        """None when this request is the one to run; otherwise the response to send instead."""
        now = self._now()
        claim = {
            "api_key": api_key_id,
            "idempotency_key": key,
            "request_hash": fingerprint,
            "state": RUNNING,
            "lease_until": now + LEASE,
            "created_at": now,
        }
        # Each statement below is complete on its own (the takeover is one conditional UPDATE), so each is
        # committed as it runs where the engine allows (see single_statement).
        with single_statement(self._engine) as connection:
            if insert_if_absent(connection, http_requests, claim):
                return None  # a new key, the common case: claimed by one prepared statement
            where = sa.and_(http_requests.c.api_key == api_key_id, http_requests.c.idempotency_key == key)
            row = connection.execute(sa.select(http_requests).where(where)).one()
            if row.request_hash != fingerprint:
                return problem(
                    422,
                    "idempotency-key-reused",
                    "Idempotency key reused with another request",
                    f"the {HEADER} {key!r} was first sent with another request; use a new key for a new request",
                )
            if row.state == DONE:
                return Response(
                    content=row.body or "",
                    status_code=row.status,
                    media_type=PROBLEM_JSON if row.status >= 400 else "application/json",
                    headers={REPLAYED_HEADER: "true"},
                )
            taken = connection.execute(
                http_requests.update()
                .where(where, http_requests.c.state == RUNNING, http_requests.c.lease_until < now)
                .values(lease_until=now + LEASE)
            ).rowcount
            if taken:
                return None  # its server died: this request runs it again
        return problem(
            409,
            "request-in-progress",
            "A request with this key is in progress",
            f"a request with the {HEADER} {key!r} is still being worked on; retry later for its outcome",
            headers={"Retry-After": "1"},
        )

    def _store(self, api_key_id: str, key: str, response: Response) -> None:
        body = bytes(response.body).decode("utf-8") if isinstance(response, JSONResponse | Response) else ""
        with single_statement(self._engine) as connection:
            _STORE.execute(
                connection, api_key=api_key_id, key=key, done=DONE, done_status=response.status_code, done_body=body
            )

    def _forget(self, api_key_id: str, key: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                http_requests.delete().where(
                    http_requests.c.api_key == api_key_id,
                    http_requests.c.idempotency_key == key,
                    http_requests.c.state == RUNNING,
                )
            )


#: A request's response, kept once it has one (prepared: run once per request that changes state).
_STORE = Prepared(
    http_requests.update()
    .where(http_requests.c.api_key == sa.bindparam("api_key"), http_requests.c.idempotency_key == sa.bindparam("key"))
    .values(state=sa.bindparam("done"), status=sa.bindparam("done_status"), body=sa.bindparam("done_body"))
)
