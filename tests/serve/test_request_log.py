import json

import numpy as np
from typer.testing import CliRunner

from seqlens.cli.main import app as cli
from seqlens.monitor.requests import read_requests
from seqlens.serve import create_app
from seqlens.serve.engine import Engine
from seqlens.serve.request_log import QUEUE_SIZE, RequestLog

from .conftest import Server, contract_client


def test_every_recommend_request_is_logged_without_its_history_unless_asked(model_dir, model, tmp_path):
    folder = tmp_path / "requests"
    server = Server(create_app(model_dir, request_log=folder))
    users = [str(u) for u in model.user_ids_[:5]]
    try:
        with contract_client(server.url) as client:
            for user in users:
                assert client.post("/v1/recommend", json={"user_id": user, "k": 4}).status_code == 200
    finally:
        server.stop()  # the lifespan's end writes out what the queue holds
    lines = [json.loads(line) for path in folder.glob("requests-*.jsonl") for line in path.read_text().splitlines()]
    assert len(lines) == len(users)
    assert all(len(e["recommended"]) == 4 and "history" not in e for e in lines)
    assert {"entropy@0", "last_mass@1", "age@1"} <= set(lines[0]["stats"])
    assert abs(sum(lines[0]["attention_by_popularity"]) - 1.0) < 1e-4
    answers = read_requests(folder, model)
    assert len(answers.records) == len(users) and answers.layers == 2
    assert (answers.recommended > 0).all()  # the logged ids are the model's items


def test_a_full_buffer_drops_batches_instead_of_blocking_a_request(tmp_path, model_dir):
    engine = Engine.load(model_dir)
    query = engine.resolve(str(engine.model.user_ids_[0]), None)
    results, stats = engine.recommend_many([query], [4], [True], attention=True)
    log = RequestLog(tmp_path)
    log._stop.set()  # a sender that no longer drains the buffer: a stalled writer
    log._sender.join()
    for _ in range(QUEUE_SIZE):  # the model's catalogue takes one place, its batches the rest
        log.record(0.0, engine, [query], results, stats)
    assert log.dropped == 1
    log.close()


def test_the_writer_process_writes_every_batch_and_a_new_models_catalogue(tmp_path, model_dir, popular_dir):
    engines = [Engine.load(model_dir), Engine.load(popular_dir)]
    log = RequestLog(tmp_path, history=True)
    for engine in engines * 2:
        queries = [engine.resolve(str(u), None) for u in engine.model.user_ids_[:3]]
        results, stats = engine.recommend_many(queries, [5] * 3, [True] * 3, attention=engine.has_attention)
        log.record(1.5, engine, queries, results, stats)
    log.close()
    lines = [json.loads(line) for path in tmp_path.glob("requests-*.jsonl") for line in path.read_text().splitlines()]
    assert len(lines) == 12 and all(len(e["recommended"]) == 5 and e["time"] == 1.5 for e in lines)
    assert sum("stats" in e for e in lines) == 6  # the popularity model has no attention statistics
    first = lines[0]
    assert first["history"] == engines[0].model.history_of(str(engines[0].model.user_ids_[0]))[-len(first["history"]) :]


def test_monitor_reads_the_request_log_and_names_a_broken_line(model_dir, model, tmp_path):
    folder = tmp_path / "requests"
    folder.mkdir()
    rng = np.random.default_rng(0)
    items = [str(i) for i in model.item_ids_]
    hour = 3600
    with open(folder / "requests-1.jsonl", "w") as f:
        for t in range(12 * 30):  # 30 requests an hour for 12 hours
            stats = {f"{s}@{layer}": float(rng.random()) for s in ("entropy", "normalized_entropy", "top1_mass", "last_mass", "age") for layer in (0, 1)}  # fmt: skip
            shares = rng.dirichlet(np.ones(5)).tolist()
            f.write(json.dumps({"time": t * hour / 30, "length": 10, "history_length": 10, "stats": stats,
                                "recommended": list(rng.choice(items, 4, replace=False)),
                                "attention_by_popularity": shares, "latest_popularity": int(rng.integers(5))}) + "\n")  # fmt: skip
    out = tmp_path / "out"
    args = ["monitor", str(model_dir), "--requests", str(folder), "--window", "1h", "--min-requests", "20",
            "--reference", "4", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (0, 3), result.output
    report = json.loads((out / "monitor.json").read_text())
    assert len(report["windows"]) == 12 and "attention_by_popularity" in report["tests"]
    (folder / "requests-1.jsonl").write_text('{"time": 1, "length": 2}\n')
    result = CliRunner().invoke(cli, args)
    assert (
        result.exit_code == 2
        and "requests-1.jsonl: line 1: a record needs time, length and recommended" in result.output
    )
