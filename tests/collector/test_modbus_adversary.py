"""The real collector against an independent, misbehaving Modbus device (adversary.py: frames
built by hand, not with the project's code), every fault kind at once, one device each, three
polls: the faulted block fails with its status in the poll it hits, every other block of every
poll holds exactly what the device sent for that poll's request (decoded as well), and the poll
after the fault reads everything again. What is checked is what the collector spooled."""

from __future__ import annotations

import dataclasses

import pytest
from adversary import Fault
from adversary_run import ADV, ONE, TWO, Case, check_block, expected_values, frame_bits, run
from ess.codec import decode_frame, encode_frame
from ess.decode import decoder_for

M, T, TR, B, OK = "mismatched_reply", "timeout", "transport", "bad_crc", "ok"
INTERVAL, TIMEOUT, TICKS = 0.9, 0.3, 3

# kind -> status of the faulted block, per framing (fc 4 = INP, the first read of a poll)
BOTH = {"other_fc": M, "exc_other_fc": M, "unit0": M, "unit255": M, "unit_next": M,
        "bc_odd": M, "bc_zero": M, "bc_large": M, "bc_says_more": M, "bc_says_less": M,
        "count_short": M, "count_long": M, "split": OK, "dup": OK, "dup_later": OK,
        "trailing_noise": OK,
        "close_mid": TR, "reset": TR, "hang": T, "late": T, "late_same_conn": T,
        **{f"exc{c}": f"exception:{c}" for c in (1, 2, 3, 4, 6, 11)}}
MBAP_ONLY = {"tid0": M, "tid_prev": M, "tid_next": M, "proto1": M, "len0": M, "len1": M,
             "len255": M, "len_short": M, "len_long_pad": M, "len_long": T,
             "stale_first": OK, "stale_after": OK, "garbage": M, "exc_long": M,
             "exc_short": M, "exc_mbap_short": M}
RTU_ONLY = {"bad_crc": B, "crc_of_other": B, "truncated": T, "other_unit": M,
            "exc_bad_crc": B, "noise": {M, B}, "noise_ff": {M, B}, "exc_long": {M, B},
            "exc_short": T, "stale_first": M, "stale_after": M, "other_first": OK}
BITS = {"padding": M, "count_short": M, "count_long": M, "other_fc": M, "split": OK,
        "exc2": "exception:2"}


def _cases() -> list[Case]:
    def case(framing, kind, status, fc=4, occurrence=2, map_id="adv", tag=""):
        status = frozenset(status if isinstance(status, set) else {status})
        return Case(f"{framing}-{kind}-fc{fc}-{occurrence}{tag}", framing,
                    (Fault(kind, fc, occurrence),), status, map_id)

    out = [case("tcp", k, s) for k, s in (BOTH | MBAP_ONLY).items()]
    # a good reply, then the device closes: the next request may go out on the closing
    # connection (transport), and the one after it reconnects
    out += [Case(f"{f}-close_after", f, (Fault("close_after", 4),), frozenset({OK}),
                 others=frozenset({OK, TR})) for f in ("tcp", "rtu")]
    out += [case("rtu", k, s) for k, s in (BOTH | RTU_ONLY).items()]
    out += [case(f, k, s, fc) for f in ("tcp", "rtu") for k, s in BITS.items() for fc in (1, 2)]
    # the very first request of a connection that never carried an accepted reply
    out += [case(f, k, BOTH.get(k) or RTU_ONLY.get(k) or MBAP_ONLY[k], occurrence=1)
            for f, kinds in (("tcp", ("other_fc", "tid0", "unit_next", "hang", "close_mid",
                                      "exc4")),
                             ("rtu", ("other_fc", "bad_crc", "truncated", "hang", "exc4")))
            for k in kinds]
    # a map of one read: nothing else in the poll settles a timed-out request
    out += [case(f, k, T, 3, map_id="one") for f in ("tcp", "rtu") for k in ("hang", "late")]
    out += [case("rtu", "truncated", T, 3, map_id="one")]
    # RTU, by design: after a timeout nothing of that unit settled, its next reply of that
    # shape within 2 intervals cannot be told from the late one: mismatched_reply, never stale
    out[-3] = dataclasses.replace(out[-3], after=frozenset({M}))
    out += _special()
    # a reply sent again just before the next one, of the same shape (RTU cannot tell them
    # apart by transaction id): the second read's answer is in doubt
    out += [Case(f"{f}-dup_held-two", f, (Fault("dup_held", 3, 2, addr=0),), frozenset({s}),
                 map_id="two", polling=(("max_registers_per_read", 4),))
            for f, s in (("tcp", OK), ("rtu", M))]
    return out


def _special() -> list[Case]:
    """Unit ids 0 and 255 (Modbus TCP devices), and faults behind a shared gateway connection
    next to a healthy unit (a unit whose first read timed out is demoted: all its blocks
    timeout in that poll)."""
    ok = frozenset({OK})
    out = [Case(f"tcp-unit{u}-{k}", "tcp", (Fault(k, 4),), frozenset({s}), group=f"u{u}{k}",
                unit=u) for u in (0, 255) for k, s in (("ok", OK), ("tid0", M))]
    shared = [("tcp", "hang", T), ("tcp", "other_fc", M), ("tcp", "tid_prev", M),
              ("tcp", "close_mid", TR), ("tcp", "unit0", M), ("rtu", "bad_crc", B),
              ("rtu", "truncated", T), ("rtu", "other_unit", M), ("rtu", "hang", T),
              ("rtu", "late", T)]
    for f, k, s in shared:
        # a wait that ended without our reply demotes the unit: its unasked blocks time out
        others = frozenset({OK, T}) if s == T or k in ("tid_prev", "other_unit") else ok
        after = frozenset({M}) if f == "rtu" and k in ("hang", "other_unit") else ok
        out.append(Case(f"{f}-shared-{k}", f, (Fault(k, 4),), frozenset({s}), group=k,
                        shared=True, others=others, after=after))
        out.append(Case(f"{f}-shared-{k}-healthy", f, (), ok, group=k, shared=True))
    return out


CASES = _cases()
MAPS = {"adv": ADV, "one": ONE, "two": TWO}


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    return run(tmp_path_factory.mktemp("adversary"), CASES, interval=INTERVAL, timeout=TIMEOUT,
               ticks=TICKS)


def _problems(case: Case, frames, dev, unit) -> list[str]:
    blocks = MAPS[case.map_id]
    fault = case.faults[0] if case.faults else Fault("ok", 4, 0)
    target = next(n for n, (fc, _, _) in blocks.items() if fc == fault.fc)
    out = []
    if [f.seq for f in frames] != list(range(1, TICKS + 1)):
        return [f"polls {[f.seq for f in frames]}"]
    for i, f in enumerate(frames):
        for name in blocks:
            hit, next_poll = i + 1 == fault.occurrence, i == fault.occurrence
            want = (case.status if hit and name == target else case.others if hit
                    else case.after if next_poll and name == target else {OK})
            got = f.blocks[name].describe()
            if got not in want:
                out.append(f"poll {i + 1} {name}: {got}, expected {sorted(want)}")
            wrong = check_block(dev, unit, blocks, name, f)
            if wrong:
                out.append(f"poll {i + 1} {wrong}")
    return out


def test_every_block_is_what_the_device_sent_or_fails_with_its_reason(collected):
    problems = {}
    for case in CASES:
        dev, unit = collected.units[case.name]
        found = _problems(case, collected.frames[case.name], dev, unit)
        if found:
            problems[case.name] = found
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())
    for dev, _unit in collected.units.values():
        assert dev.bad_requests == []           # every request was well formed


def test_what_was_spooled_decodes_to_the_values_the_device_sent(collected):
    for case in CASES:
        blocks = MAPS[case.map_id]
        frames = collected.frames[case.name]
        batches, _ = decoder_for(collected.maps[case.name]).decode_frames(frames)
        rows = {int(i): r for tb in batches for i, r in zip(tb.frame, tb.rows())}
        for i, f in enumerate(frames):
            expected = {}
            for name, (fc, _s, count) in blocks.items():
                b = f.blocks[name]
                if not b.ok:
                    expected |= dict.fromkeys(expected_values(blocks, name, None), None)
                    continue
                data = frame_bits(b.registers, count) if fc in (1, 2) else b.registers
                expected |= expected_values(blocks, name, data)
            got = {k: v for k, v in rows.get(i, {}).items() if k in expected}
            if any(b.ok for b in f.blocks.values()):
                assert got == expected, (case.name, f.seq)
            assert decode_frame(encode_frame(f)) == f
