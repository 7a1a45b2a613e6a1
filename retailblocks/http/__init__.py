"""The stack over HTTP: ``create_app`` returns the ASGI application that ``blocks serve`` runs."""

from retailblocks.http.app import create_app

__all__ = ["create_app"]
