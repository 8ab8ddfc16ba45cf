"""The HTTP service (`seqlens serve`): FastAPI app, request schemas, static page. Nothing imports it but the CLI."""

from seqlens.serve.app import create_app

__all__ = ["create_app"]
