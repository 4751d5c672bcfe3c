"""Register values of a healthy bank for the throughput benchmarks: every register an alarm
reads shows that alarm inactive (a real bank reports its warning and fault words mostly clear and
its cells within limits). Synthetic values (random, or counting up each second) would keep dozens
of alarm bits on or flapping every second: a load no fleet sends, measured on purpose by
bench_events_ingest (standing alarms) instead."""

from __future__ import annotations


def _clear_value(alarm) -> float:
    """A value past the alarm's hysteresis on the clear side."""
    if alarm.above is not None:
        return alarm.above - alarm.hysteresis - abs(alarm.above) * 0.1 - 1
    return alarm.below + alarm.hysteresis + abs(alarm.below) * 0.1 + 1


def quiet_alarms(regmap, regs: dict[str, list[int]]) -> dict[str, list[int]]:
    """`regs` (block name -> register values) with every alarm's register(s) inactive."""
    alarms = {(a.table, a.column): a for a in regmap.alarms}
    for f in regmap.fields():
        alarm = alarms.get((f.table, f.column))
        if alarm is None:
            continue
        start = f.address - regmap.block(f.block).start
        if not alarm.is_threshold:
            regs[f.block][start:start + f.width] = [0] * (f.width - 1) + [int(bool(f.invert))]
        elif f.width == 1 and f.scale_factor is None:
            regs[f.block][start] = round(_clear_value(alarm) / f.scale) % 65536
    return regs
