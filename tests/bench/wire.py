"""Bytes on the wire for `make bench`: what Pub/Sub bills per frame.

Ten minutes of a 10-bank site from the simulator model, packed as the collector packs them
(`message_for`: one site per message; 10 frames per message, and 1 for a 1-bank site). Pub/Sub
bills a message's body, its attributes (keys and values), 20 bytes of timestamp and its id, and
at least 1,000 bytes per publish or push request (docs/scaling.md, "Prices").
"""

from __future__ import annotations

SECONDS = 600
BANKS = 10
MESSAGE_ID = 17            # digits of a Pub/Sub message id
MIN_REQUEST = 1000         # billed at least this per publish or push request


def _frames(seconds: range, banks: int) -> list[list]:
    from ess.codec import BlockData, Frame
    from ess.regmap import load_map
    from ess_collector.simulator.model import registers_at

    m = load_map("default")
    t0 = 1_790_000_000
    return [[Frame("site-bench", b, s, (t0 + s) * 1_000_000, (t0 + s) * 1_000_000 + 40_000,
                   m.map_id, m.version, {n: BlockData(registers=Frame.registers_to_bytes(r))
                                         for n, r in registers_at(b, t0 + s).items()})
             for b in range(1, banks + 1)] for s in seconds]


def billed(messages: list[tuple[bytes, dict]]) -> tuple[float, float]:
    """(body bytes, billed bytes) summed over the messages."""
    body = sum(len(b) for b, _ in messages)
    attrs = [sum(len(k) + len(v) for k, v in a.items()) + 20 + MESSAGE_ID for _, a in messages]
    total = sum(max(MIN_REQUEST, len(b) + a) for (b, _), a in zip(messages, attrs, strict=True))
    return body, total


def measure(compress: bool = False) -> dict[str, float]:
    """Per frame: body and billed bytes of 10-frame and 1-frame messages, as the collector's
    `message_for` packs them (frame bodies as spooled)."""
    from ess.codec import encode_frame
    from ess_collector.publisher import message_for

    def pack(site: str, frames: list) -> tuple[bytes, dict]:
        return message_for(site, [encode_frame(f) for f in frames],
                           [f.poll_start_us for f in frames], compress)

    seconds = _frames(range(SECONDS), BANKS)
    frames = SECONDS * BANKS
    ten = [pack("site-bench", fs) for fs in seconds]
    one = [pack("site-bench", [fs[0]]) for fs in seconds]
    body10, billed10 = billed(ten)
    body1, billed1 = billed(one)
    return {"body10": body10 / frames, "billed10": billed10 / frames,
            "body1": body1 / SECONDS, "billed1": billed1 / SECONDS}


def bench_wire_bytes() -> list[dict]:
    """Bytes per frame on the wire, and what Pub/Sub bills for them, plain and compressed."""
    plain = measure()
    packed = measure(compress=True)
    return [{"figure": "bytes per frame on the wire: Pub/Sub billed bytes, compressed messages "
                       "(publish.compress, codec message version 2) vs plain, 10 frames each",
             "ours": packed["billed10"], "baseline": plain["billed10"], "unit": "B",
             "target": "half of plain or less", "higher_is_better": False,
             "note": f"compressed: deflated body {packed['body10']:,.0f} B per frame in 10-frame "
                     f"messages ({packed['body10'] / plain['body10']:.0%} of plain), "
                     f"{packed['body1']:,.0f} B alone (1-frame messages are billed "
                     f"{packed['billed1']:,.0f} B: the 1,000 B minimum per request)"},
            {"figure": "bytes per frame on the wire: Pub/Sub billed bytes, 10-frame messages "
                       "(baseline: 1-frame messages, a 1-bank site)",
             "ours": plain["billed10"], "baseline": plain["billed1"], "unit": "B",
             "target": "", "higher_is_better": False,
             "note": f"wire: {SECONDS} s of {BANKS} banks from the simulator model, packed by "
                     f"the collector's message_for; codec body {plain['body10']:,.0f} B per "
                     f"frame in 10-frame messages, {plain['body1']:,.0f} B alone; billed = body "
                     "+ attributes + 20 B timestamp + message id, at least 1,000 B per request"}]
