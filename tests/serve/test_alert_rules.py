"""The shipped Prometheus rules: valid, tested with promtool, and reading metrics the service exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "seqlens-alerts.yml"
RULE_TESTS = Path(__file__).with_name("alert_rules_test.yml")
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool is not installed (Debian package `prometheus`)"
)


@needs_promtool
def test_promtool_accepts_the_rules():
    done = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_the_rules_fire_on_their_faults_and_stay_quiet_otherwise():
    done = subprocess.run(["promtool", "test", "rules", str(RULE_TESTS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_metric_the_rules_read_is_exported(client):
    assert client.post("/v1/recommend", json={"items": ["i3", "i17"], "k": 5}).status_code == 200
    exported = set(re.findall(r"^(seqlens_\w+)", client.get("/metrics").text, flags=re.M))
    rules = "\n".join(line for line in RULES.read_text().splitlines() if not line.lstrip().startswith("#"))
    read = set(re.findall(r"\b(seqlens_\w+)\b", rules))
    assert read and read <= exported, sorted(read - exported)
