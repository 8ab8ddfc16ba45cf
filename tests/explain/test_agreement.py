"""One recommended item: `recommend`, `explain`, the CLI, the HTML report and the service explain the same item.

On MovieLens-100K, for every user whose history is longer than the window the model reads (where excluding
only the window's items, not the whole history, used to name an item the user had already seen).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

import seqlens
from seqlens.cli.main import app as cli
from seqlens.explain import DEFAULT_METHOD, explain_batch
from seqlens.explain.report import html_report
from seqlens.serve import create_app
from tests.serve.conftest import Server

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "ml-100k" / "u.data"

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    if not DATA.exists():
        pytest.skip(f"{DATA} is absent: the licensed datasets live in ../shared/data and are not redistributed")
    split = seqlens.leave_one_out(seqlens.read_movielens(DATA))
    model = seqlens.SASRec(max_len=20, dim=16, epochs=1, progress=False, seed=0).fit(split.train)
    path = tmp_path_factory.mktemp("agreement") / "model"
    model.save(path)
    long = [u for u in model.user_ids_ if len(model.history_of(u)) > model.max_len]
    top = model.recommend(users=long, k=1).set_index("user_id")["item_id"].to_dict()
    return model, path, long, top


def test_library_explains_the_top_recommendation_of_every_long_history(fitted):
    model, _, long, top = fitted
    assert len(long) > 800  # nearly every ML-100K user reads past a window of 20
    explained = explain_batch(model, users=long, method="attention")  # the item does not depend on the method
    assert {e.user: e.recommended for e in explained} == top
    for e in explained[:50]:
        assert e.recommended not in model.history_of(e.user)  # never an item the user has already seen


def test_cli_explains_the_same_items(fitted):
    _, path, long, top = fitted
    users = long[:300]
    args = ["explain", str(path), "--json", "--method", "attention"]
    result = CliRunner().invoke(cli, [*args, *[a for u in users for a in ("--user", u)]])
    assert result.exit_code == 0, result.output
    explained = json.loads(result.stdout)
    assert {e["user"]: e["recommended"] for e in explained} == {u: top[u] for u in users}


def test_report_narrates_the_item_its_recommendation_table_shows_first(fitted):
    model, _, long, top = fitted
    users = long[:5]
    page, explanations = html_report(model, users=users)
    assert [e.recommended for e in explanations] == [top[u] for u in users]
    for user in users:  # each user's section: the narrative's item heads the "Top recommendations" table
        section = page.split(f"<h2>User {user}</h2>")[1].split("<h2>")[0]
        title = html.escape(model.item_titles_.get(top[user], top[user]))
        narrated = re.search(r"Recommended <em>(.*?)</em>", section)
        first_row = re.search(r"<td class='num'>1</td><td>(.*?)</td>", section)
        assert narrated is not None and first_row is not None
        assert narrated.group(1) == first_row.group(1) == title


def test_service_explains_the_same_items(fitted):
    _, path, long, top = fitted
    server = Server(create_app(path))
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for user in long[:100]:
                body = client.post("/v1/recommend", json={"user_id": user, "k": 1, "explain": True}).json()
                assert body["recommendations"][0]["item_id"] == body["explanation"]["item_id"] == top[user]
                assert body["explanation"]["method"] == DEFAULT_METHOD
    finally:
        server.stop()
