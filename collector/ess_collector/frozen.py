"""Frozen-device detection: a bank whose registers stay byte-identical in every block for
`frozen_after` seconds (a BMS that hangs but keeps answering) is flagged once, and again when
it thaws. The ledger's crc lets `ess status` find the same runs in the database."""

from __future__ import annotations

from ess.codec import BlockData
from ess.wire.crc import registers_crc


class FrozenWatch:
    """Per device: the current run of identical registers and whether it is flagged."""

    def __init__(self, frozen_after: float):
        self.frozen_after = frozen_after
        self.crc: int | None = None
        self.since = 0.0
        self.frozen = False

    def update(self, blocks: dict[str, BlockData], now: float) -> str | None:
        """Feed one poll; return "frozen" or "thawed" when the state changes, else None."""
        crc = registers_crc(blocks)
        if crc is None or crc != self.crc:
            self.crc, self.since = crc, now
            if self.frozen:
                self.frozen = False
                return "thawed"
            return None
        if not self.frozen and now - self.since >= self.frozen_after:
            self.frozen = True
            return "frozen"
        return None
