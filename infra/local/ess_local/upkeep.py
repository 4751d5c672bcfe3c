"""`make run`'s share of the scheduler's other jobs: the export function's `rollup` task every
ROLLUP_EVERY seconds (Cloud Scheduler: every 5 minutes) and `retention` with the exit export."""

from __future__ import annotations

import json
import urllib.request

ROLLUP_EVERY = 60.0


def run_task(url: str, task: str, timeout: float = 120) -> dict:
    """POST {"task": task} to the export function; its JSON answer, or {"error": ...}."""
    req = urllib.request.Request(url, data=json.dumps({"task": task}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"{}")
    except (OSError, ValueError) as exc:
        return {"error": f"{task}: {exc}"}


def describe(answer: dict) -> str:
    """One line for the run's output."""
    if "error" in answer:
        return f"failed: {answer['error']}"
    if answer.get("task") == "rollup":
        return (f"{sum(answer.get('minutes', {}).values())} minute and "
                f"{sum(answer.get('hours', {}).values())} hour rows")
    return (f"{answer.get('dropped', 0)} raw range(s) dropped, {answer.get('kept', 0)} kept, "
            f"{sum(answer.get('pruned', {}).values())} rollup rows pruned")
