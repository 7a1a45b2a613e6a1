"""What ``blocks serve`` runs in each worker process: the app for the manifest the command was given."""

from __future__ import annotations

import os

from starlette.types import ASGIApp

from retailblocks.http.app import create_app

#: How often each worker recovers flows left half-way whose lease has run out (a flow's lease is two
#: minutes): a crashed worker's checkouts, or a payment a provider has since resolved, finish without a restart.
RECOVER_EVERY_SECONDS = 30.0
#: How often a platform's worker looks for webhooks to deliver when the last round had nothing to send
#: (a single stack's server delivers as soon as there is more, and waits this long otherwise).
WEBHOOK_INTERVAL_SECONDS = 1.0

#: The manifest the serving command checked, passed to the worker processes it starts.
SERVE_MANIFEST_ENV = "RETAILBLOCKS_SERVE_MANIFEST"
#: The requests each worker runs at once (``blocks serve --threads``), when the command was given it.
SERVE_THREADS_ENV = "RETAILBLOCKS_SERVE_THREADS"


def app() -> ASGIApp:
    """The ASGI app factory uvicorn calls in every worker: a stack's, or a platform's (a file with a
    top-level ``platform:`` key), which serves all its merchants under ``/m/{merchant}/``."""
    from retailblocks.platform.manifest import is_platform_file

    manifest = os.environ[SERVE_MANIFEST_ENV]
    threads = int(os.environ[SERVE_THREADS_ENV]) if os.environ.get(SERVE_THREADS_ENV) else None
    if is_platform_file(manifest):
        from retailblocks.http.platform import create_platform_app

        return create_platform_app(
            path=manifest,
            recover_every=RECOVER_EVERY_SECONDS,
            webhook_interval=WEBHOOK_INTERVAL_SECONDS,
            threads=threads,
        )
    return create_app(manifest=manifest, recover_every=RECOVER_EVERY_SECONDS, threads=threads, freeze_after_start=True)


LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"line": {"format": "%(message)s"}, "server": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "access": {"class": "logging.StreamHandler", "formatter": "line", "stream": "ext://sys.stdout"},
        "server": {"class": "logging.StreamHandler", "formatter": "server", "stream": "ext://sys.stderr"},
    },
    "loggers": {
        "retailblocks.http.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        "retailblocks.http": {"handlers": ["server"], "level": "INFO", "propagate": False},
        "uvicorn": {"handlers": ["server"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
    },
}
