"""``blocks serve``: the stack as an HTTP server (see retailblocks.http)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from retailblocks.cli.support import json_option, manifest_option, open_stack, reporting_errors


@click.command()
@manifest_option()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="The port.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes; they share only the stack's database.",
)
@click.option(
    "--threads",
    default=None,
    type=click.IntRange(1, 1000),
    help="Requests each worker runs at once (default 40). Fewer cost less CPU when payment providers answer "
    "in milliseconds; a worker needs as many as checkouts it should keep waiting on slow providers.",
)
@json_option("Report start-up errors as JSON (the server's own logs are JSON lines either way).")
def serve(manifest: Path, host: str, port: int, workers: int, threads: int | None, as_json: bool) -> None:
    """Serve the stack over HTTP: the store API for channels, operations, and /docs.

    Given a platform manifest (platform.yaml), serve every merchant of it under /m/{merchant}/.

    The manifest must be assembled (`blocks assemble`). Every worker finishes or undoes, at start, the
    flows a crash left half-way; SIGTERM stops taking requests and lets those in flight finish.
    """
    # Checked here, in one clear line, before any worker starts: an unassembled or broken manifest.
    from retailblocks.platform.manifest import is_platform_file

    if is_platform_file(manifest):
        from retailblocks.platform.operations import check_platform

        with reporting_errors():
            check_platform(manifest)
    else:
        with open_stack(manifest):
            pass
    import uvicorn

    from retailblocks.http.server import LOG_CONFIG, SERVE_MANIFEST_ENV, SERVE_THREADS_ENV

    os.environ[SERVE_MANIFEST_ENV] = str(Path(manifest).resolve())
    if threads is not None:
        os.environ[SERVE_THREADS_ENV] = str(threads)
    with _shared_metrics(workers):
        uvicorn.run(
            "retailblocks.http.server:app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=False,
            log_config=LOG_CONFIG,
            timeout_graceful_shutdown=30,
            server_header=False,
        )


@contextmanager
def _shared_metrics(workers: int) -> Iterator[None]:
    """With several workers, a fresh directory where they share their request counts (prometheus_client's
    multiprocess mode; see retailblocks.http.metrics), set before any worker starts and removed on exit.
    One worker keeps its counts in memory. A directory the operator set already is used as it is."""
    from retailblocks.http.metrics import MULTIPROC_ENV

    if workers == 1 or os.environ.get(MULTIPROC_ENV):
        yield
        return
    directory = tempfile.mkdtemp(prefix="retailblocks-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield
    finally:
        del os.environ[MULTIPROC_ENV]
        shutil.rmtree(directory, ignore_errors=True)


@click.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the document to this file (default: print it).",
)
@json_option("The document is JSON either way.")
def openapi(output: Path | None, as_json: bool) -> None:
    """The HTTP API's OpenAPI 3.1 document (JSON), as `blocks serve` publishes it at /openapi.json."""
    from retailblocks.http.app import openapi_document

    text = json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as error:
            raise click.ClickException(f"cannot write {output}: {error.strerror or error}") from None


COMMANDS = [serve, openapi]
