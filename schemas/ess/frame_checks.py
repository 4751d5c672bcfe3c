"""Checks of decoded frames before they are written (ingest and redecode), and their errors.

Every frame must fit the database (bank id, poll time), name a configured device (site, bank),
carry that device's map, and carry blocks, all of them known to the map, and have been polled
within `poll_window` (default 7 days) of the message's publish time when it has one (a clock
years off would otherwise create a day's partitions for every day it names: a message's frames
create at most the window's days). `FrameChecks` builds its lookups once per configuration;
`check(frames, published)` raises the first problem as a typed PermanentError, whose `reason`
code logs and quarantine use.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from . import codec
from .errors import PermanentError
from .regmap import RegisterMap
from .sites import SitesConfig
from .wire.times import US_MAX, US_MIN, iso_z, to_us

BANK_MAX = 32767   # bank_id is a smallint column
POLL_MIN_US, POLL_MAX_US = US_MIN, US_MAX   # a timestamptz holds the years 1..9999
POLL_US_MAX = 2 ** 31 - 1   # the ledger's poll duration is an int4 of microseconds
SEQ_MAX = 2 ** 63 - 1      # the ledger's seq is a bigint
DEFAULT_MAX_FRAMES = 2000   # well above the collector's largest max_frames (1000)
# The collector's spool keeps a frame at most 7 days (collector.spool.max_age_hours): a poll
# further than that from its publish time is a wrong clock (ESS_POLL_WINDOW_DAYS).
DEFAULT_POLL_WINDOW = timedelta(days=7)


class UnknownSite(PermanentError):
    """A frame names a site that the sites configuration does not list."""

    reason = "unknown_site"


class UnknownMap(PermanentError):
    """A frame names a map id and version that no configured device uses."""

    reason = "unknown_map_version"


class EmptyMessage(PermanentError):
    """A message holds no frames (or no bytes at all)."""

    reason = "empty_message"


class TooManyFrames(PermanentError):
    """A message holds more frames than the per-message limit (ESS_MAX_FRAMES)."""

    reason = "too_many_frames"


class BankOutOfRange(PermanentError):
    """A frame's bank id does not fit the database's smallint bank_id column (1..32767)."""

    reason = "bank_id_out_of_range"


class PollTimeOutOfRange(PermanentError):
    """A frame's poll start lies outside the years 1..9999, or its poll lasts longer than the
    ledger's int4 microseconds (~35 minutes)."""

    reason = "poll_time_out_of_range"


class PollTimeFarFromPublish(PermanentError):
    """A frame's poll start lies further than the poll window from the message's publish time
    (the collector host's clock is off)."""

    reason = "poll_time_far_from_publish"


class SeqOutOfRange(PermanentError):
    """A frame's sequence number does not fit the ledger's bigint seq column."""

    reason = "seq_out_of_range"


class UnknownBank(PermanentError):
    """A frame's (site, bank) is not a device of the sites configuration."""

    reason = "unknown_bank"


class WrongDeviceMap(PermanentError):
    """A frame's map is configured, but not the map of the device (site, bank) it names."""

    reason = "wrong_device_map"


class NoBlocks(PermanentError):
    """A frame carries no blocks at all."""

    reason = "no_blocks"


class UnknownBlocks(PermanentError):
    """A frame carries block names its map does not define."""

    reason = "unknown_blocks"


class FrameChecks:
    """The checks for one configuration (`sites`), or for maps alone (`sites=None`)."""

    def __init__(self, sites: SitesConfig | None,
                 maps: dict[tuple[str, int], RegisterMap] | None = None,
                 max_frames: int = DEFAULT_MAX_FRAMES,
                 poll_window: timedelta = DEFAULT_POLL_WINDOW):
        self.sites, self.max_frames = sites, max_frames
        self.window_us = poll_window // timedelta(microseconds=1) if poll_window else None
        self.maps = maps if maps is not None else (sites.maps() if sites else {})
        self.devices = ({(d.site_id, d.bank_id): d.map.key for d in sites.devices()}
                        if sites else None)
        self.site_ids = sites.site_ids if sites else frozenset()
        self.blocks = {key: frozenset(b.name for b in m.blocks) for key, m in self.maps.items()}

    def check(self, frames: list[codec.Frame], published: datetime | None = None) -> None:
        """Raise the first problem of the message (published at `published`, if known) as a
        typed PermanentError."""
        if not frames:
            raise EmptyMessage("the message holds no frames")
        if len(frames) > self.max_frames:
            raise TooManyFrames(f"{len(frames)} frames in one message (limit {self.max_frames})")
        for f in frames:
            self.check_frame(f)
        if published is not None and self.window_us is not None:
            self.check_window(frames, to_us(published))

    def check_window(self, frames: list[codec.Frame], published_us: int) -> None:
        """Raise PollTimeFarFromPublish for the first frame polled too far from the publish."""
        for f in frames:
            if abs(f.poll_start_us - published_us) > self.window_us:
                raise PollTimeFarFromPublish(
                    f"frame seq {f.seq}: polled {iso_z(f.poll_start_us)}, more than "
                    f"{self.window_us // 86_400_000_000} days from its publish time "
                    f"{iso_z(published_us)}: check the collector host's clock")

    def check_frame(self, f: codec.Frame) -> None:
        """Raise the first problem of one frame."""
        where = f"frame seq {f.seq}"
        if not 1 <= f.bank_id <= BANK_MAX:
            raise BankOutOfRange(f"{where}: bank {f.bank_id} is outside 1..{BANK_MAX}")
        if not POLL_MIN_US <= f.poll_start_us <= POLL_MAX_US:
            raise PollTimeOutOfRange(f"{where}: poll start {f.poll_start_us} us since 1970 is "
                                     "outside the years 1..9999")
        if f.poll_end_us - f.poll_start_us > POLL_US_MAX:
            raise PollTimeOutOfRange(f"{where}: the poll lasts {f.poll_end_us - f.poll_start_us} "
                                     f"us (at most {POLL_US_MAX})")
        if f.seq > SEQ_MAX:
            raise SeqOutOfRange(f"{where}: sequence number above {SEQ_MAX}")
        key = (f.map_id, f.map_version)
        if self.devices is not None:
            if f.site_id not in self.site_ids:
                raise UnknownSite(f"{where}: site {f.site_id!r} is not configured")
            device_map = self.devices.get((f.site_id, f.bank_id))
            if device_map is None:
                raise UnknownBank(f"{where}: bank {f.bank_id} is not a device of site "
                                  f"{f.site_id!r}")
        if key not in self.maps:
            raise UnknownMap(f"{where}: map {f.map_id!r} v{f.map_version} is not configured "
                             f"(known: {sorted(self.maps)})")
        if self.devices is not None and key != device_map:
            raise WrongDeviceMap(f"{where}: map {f.map_id!r} v{f.map_version} is not the map of "
                                 f"{f.site_id}/bank{f.bank_id} ({device_map[0]} v{device_map[1]})")
        if not f.blocks:
            raise NoBlocks(f"{where}: no blocks")
        unknown = set(f.blocks) - self.blocks[key]
        if unknown:
            raise UnknownBlocks(f"{where}: block(s) {', '.join(sorted(map(repr, unknown)))} not "
                                f"in map {f.map_id!r} v{f.map_version}")


def check_frames(frames: list[codec.Frame], sites: SitesConfig) -> None:
    """One-off check of a message against `sites` (build a FrameChecks to check many)."""
    FrameChecks(sites).check(frames)
