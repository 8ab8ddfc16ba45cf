"""The HTTP service (`seqlens serve`): FastAPI app, request schemas, static page. Nothing imports it but the CLI."""

from typing import TYPE_CHECKING

from seqlens._lazy import lazy_names

if TYPE_CHECKING:  # imported on first use (seqlens/_lazy.py): the request log's writer process imports one module
    from seqlens.serve.app import create_app

__all__ = ["create_app"]

__getattr__, __dir__ = lazy_names(__name__)
