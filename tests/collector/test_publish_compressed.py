"""The collector's publisher with `publish.compress`: the message on the topic is version 2 and
reads back as the frames published."""

from __future__ import annotations

import uuid

from ess.codec import COMPRESSED, BlockData, Frame, decode_frames, encode_frame
from ess.regmap import load_map
from ess_collector.config import PublishSettings
from ess_collector.publisher import FramePublisher


def test_a_compressed_publish_reads_back(pubsub_emulator, monkeypatch):
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host)
    topic = f"zip-{uuid.uuid4().hex[:8]}"
    pubsub_emulator.admin.create_topic(topic)
    pubsub_emulator.admin.create_pull_subscription(topic, topic)
    m = load_map("default")
    frames = [Frame("site-z", b, 1, 1_790_000_000_000_000, 1_790_000_000_040_000, m.map_id,
                    m.version, {x.name: BlockData(registers=bytes(2 * x.words))
                                for x in m.blocks}) for b in (1, 2)]
    settings = PublishSettings(topic=pubsub_emulator.admin.topic_path(topic), max_frames=10,
                               max_latency=0.1, ordering=True, timeout=30, replay_rate=500,
                               max_in_flight=10, compress=True)
    publisher = FramePublisher(settings)
    try:
        publisher.publish("site-z", [encode_frame(f) for f in frames],
                          [f.poll_start_us for f in frames]).result(30)
    finally:
        publisher.stop()
    [msg] = pubsub_emulator.admin.pull(topic, timeout=30)
    assert msg.data[4] == COMPRESSED and msg.attributes["schema_version"] == "2"
    assert decode_frames(msg.data) == frames
