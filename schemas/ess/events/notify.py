"""The structured line of a raised episode (`stage=event`): logged once, by the transaction
that inserted the episode, after it committed. Log-based metrics and alerts read it
(infra/monitoring.tf). The line is a WARNING (equipment that needs attention, not a failure of
the pipeline: error counts stay the pipeline's); the alarm's own severity is `alarm_severity`
(Cloud Logging takes a line's `severity` as the entry's level)."""

from __future__ import annotations

import logging
import time

from ..logs import event
from ..wire.times import iso_z as _iso
from .episodes import Episode


def where(e: Episode) -> str:
    """`site/bankN` or `site/bankN/rackM`."""
    return f"{e.site}/bank{e.bank}" + (f"/rack{e.rack}" if e.rack is not None else "")


def log_raised(logger: logging.Logger, episodes: list[Episode], **ids) -> None:
    """One line per raised episode: site, bank, rack, alarm, alarm_severity, raised, since, value
    and `delay_s` (from the raising poll to this line); `ids` (e.g. sink, message_id) too."""
    now_us = time.time_ns() // 1000
    for e in episodes:
        value = int(e.raised_value) if float(e.raised_value).is_integer() else e.raised_value
        fields = {"site": e.site, "bank": e.bank, "rack": e.rack, "alarm": e.alarm,
                  "alarm_severity": e.severity, "raised": _iso(e.raised), "since": _iso(e.since),
                  "value": e.raised_value, "delay_s": round((now_us - e.raised) / 1e6, 3)}
        fields.update((k, v) for k, v in ids.items() if k not in fields)
        event(logger, f"{where(e)}: {e.severity} {e.alarm} raised at {_iso(e.raised)} "
              f"(value {value})", stage="event", level=logging.WARNING, **fields)
