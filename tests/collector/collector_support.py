"""Helpers for the collector tests: simulator/collector processes, configs and pulling frames."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import yaml
from ess.codec import Frame, decode_frames
from ess_collector.simulator.server import SimulatorProcess, free_port_range

LOCALHOST = "127.0.0.1"


def free_ports(n: int) -> int:
    """First of `n` consecutive free TCP ports on 127.0.0.1."""
    return free_port_range(n)


def start_simulator(banks: int, tmp: Path, faults: list[dict] | None = None,
                    seed: int = 0) -> SimulatorProcess:
    """A simulator subprocess, one port per bank; `.port` is bank 1's port."""
    path = None
    if faults:
        path = tmp / "faults.yaml"
        path.write_text(yaml.safe_dump({"faults": faults}))
    port = free_ports(banks)
    return SimulatorProcess(port, banks, seed=seed, faults=str(path) if path else None,
                            log_path=str(tmp / "simulator.log")).start()


def new_topic(emulator, ordering: bool = True) -> tuple[str, str]:
    """A fresh topic with a pull subscription; returns (topic path, subscription name)."""
    name = f"frames-{uuid.uuid4().hex[:8]}"
    topic = emulator.admin.create_topic(name)
    create_subscription(emulator, name, ordering)
    return topic, f"{name}-sub"


def create_subscription(emulator, name: str, ordering: bool = True) -> None:
    admin = emulator.admin
    admin.subscriber.create_subscription(request={
        "name": admin.subscription_path(f"{name}-sub"), "topic": admin.topic_path(name),
        "ack_deadline_seconds": 30, "enable_message_ordering": ordering}, timeout=10)


def write_config(tmp: Path, sim: SimulatorProcess, topic: str, *, site: str = "site-a",
                 **collector) -> Path:
    """sites.yaml with one device per simulated bank."""
    devices = [{"host": LOCALHOST, "port": sim.port + b - 1, "bank_id": b}
               for b in range(1, sim.banks + 1)]
    section = {"topic": topic, "interval": 1.0, "timeout": 0.3,
               "reconnect": {"initial": 0.2, "max": 2},
               "publish": {"max_frames": 5, "max_latency": 0.3, "timeout": 3},
               "spool": {"path": str(tmp / "spool.sqlite")}, "stats_interval": 5}
    for key, value in collector.items():
        if isinstance(value, dict):
            section.setdefault(key, {}).update(value)
        else:
            section[key] = value
    path = tmp / "sites.yaml"
    path.write_text(yaml.safe_dump({"sites": [{"site_id": site, "devices": devices}],
                                    "collector": section}))
    return path


class CollectorProcess:
    """`ess collect` as a real subprocess, logging JSON lines to a file."""

    def __init__(self, config: Path, emulator_host: str, log: Path, ticks: int | None = None):
        self.argv = [sys.executable, "-m", "ess.cli", "collect", "--config", str(config)]
        if ticks:
            self.argv += ["--ticks", str(ticks)]
        self.env = {**os.environ, "PUBSUB_EMULATOR_HOST": emulator_host}
        self.env.pop("ESS_TOPIC", None)
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> CollectorProcess:
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "ab"), start_new_session=True)
        return self

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def terminate(self, timeout: float = 20) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def events(self) -> list[dict]:
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out


def pull_frames(emulator, sub: str, *, until=None, timeout: float = 30.0,
                quiet: float = 1.5) -> list[tuple[Frame, dict]]:
    """Pull (and ack) messages until `until(frames)` holds, or nothing came for `quiet` s."""
    got: list[tuple[Frame, dict]] = []
    end = time.monotonic() + timeout
    last = time.monotonic()
    while time.monotonic() < end:
        msgs = emulator.admin.pull(sub, max_messages=100, timeout=5)
        for m in msgs:
            attrs = dict(m.attributes)
            got += [(f, attrs) for f in decode_frames(m.data)]
        if msgs:
            last = time.monotonic()
        if until is not None and until([f for f, _ in got]):
            break
        if until is None and time.monotonic() - last > quiet:
            break
        if not msgs:
            time.sleep(0.2)
    return got


def by_device(frames: list[Frame]) -> dict[int, list[Frame]]:
    out: dict[int, list[Frame]] = {}
    for f in frames:
        out.setdefault(f.bank_id, []).append(f)
    return out
