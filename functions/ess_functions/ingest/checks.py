"""Checks of decoded frames against the sites configuration (ingest and redecode)."""

from __future__ import annotations

from ess import codec
from ess.sites import SitesConfig

from .errors import UnknownMap, UnknownSite


def check_frames(frames: list[codec.Frame], sites: SitesConfig) -> None:
    """Raise UnknownSite / UnknownMap unless every frame's site and map are configured."""
    known_sites = sites.site_ids
    maps = sites.maps()
    for f in frames:
        if f.site_id not in known_sites:
            raise UnknownSite(f"frame seq {f.seq}: site {f.site_id!r} is not configured")
        if (f.map_id, f.map_version) not in maps:
            raise UnknownMap(f"frame seq {f.seq}: map {f.map_id!r} v{f.map_version} is not "
                             f"configured (known: {sorted(maps)})")
