"""A tiny SASRec saved to disk and the real app served by uvicorn on loopback, shared by the API tests.

The model is trained here on the synthetic log (seconds), so the tests never need ../shared/data.
Serving through uvicorn (not an in-process transport) exercises what clients meet: HTTP parsing,
Content-Length, chunked bodies, the middleware.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

import seqlens
from seqlens.serve import create_app
from seqlens.serve.schemas import RecommendResponse

TOKEN = "test-token-0123456789"
TINY = dict(dim=16, max_len=20, layers=2, heads=2, dropout=0.1, epochs=2, progress=False, seed=0)


@pytest.fixture(scope="session")
def serve_log() -> seqlens.InteractionLog:
    return seqlens.synthetic_log(n_users=150, n_items=60, mean_length=25, seed=1)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, serve_log) -> Path:
    path = tmp_path_factory.mktemp("serve") / "model"
    seqlens.SASRec(**TINY).fit(serve_log).save(path)
    return path


@pytest.fixture(scope="session")
def model(model_dir) -> seqlens.Recommender:
    return seqlens.load(model_dir)


class Server:
    """uvicorn in a background thread on a free loopback port; `stop()` shuts it down cleanly."""

    def __init__(self, app):
        self.app = app
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def server(model_dir) -> Iterator[Server]:
    """The app without a reload token (reload disabled), as most deployments run it."""
    s = Server(create_app(model_dir))
    yield s
    s.stop()


def check_contract(response: httpx.Response) -> None:
    """Every answer keeps the documented contract: recommend bodies match `RecommendResponse` exactly
    (no undocumented fields), and every error is JSON with an `error` message."""
    response.read()
    if response.request.url.path == "/v1/recommend" and response.status_code == 200:
        RecommendResponse.model_validate(response.json())
    elif response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json"), response.text
        assert isinstance(response.json().get("error"), str) and response.json()["error"]


def contract_client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=30, event_hooks={"response": [check_contract]})


@pytest.fixture(scope="session")
def client(server) -> Iterator[httpx.Client]:
    with contract_client(server.url) as c:
        yield c


@pytest.fixture(scope="session")
def popular_dir(tmp_path_factory, serve_log) -> Path:
    """A baseline without attention: served, but it cannot be explained."""
    path = tmp_path_factory.mktemp("serve") / "popular"
    seqlens.Popular().fit(serve_log).save(path)
    return path
