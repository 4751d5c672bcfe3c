"""`ess events` text: each time in the site's wall time with its offset (the JSON keeps UTC)."""

from __future__ import annotations

from ess.events.cli import _text


def _episode(site: str, **kw) -> dict:
    return {"site_id": site, "bank_id": 1, "rack_id": None, "alarm": "cell_temp_high",
            "severity": "warning", "since": "2026-12-06T23:59:50+00:00",
            "raised": "2026-12-07T00:00:00.250000+00:00", "raised_value": 61.5,
            "cleared": "2026-12-07T00:02:05+00:00", "cleared_value": 55, "active": False,
            "duration_s": 135.0, **kw}


def test_times_in_the_sites_zone():
    doc = {"sites": [{"site_id": "seoul", "timezone": "Asia/Seoul"},
                     {"site_id": "utc", "timezone": "UTC"}],
           "episodes": [_episode("seoul"),
                        _episode("utc", since="2026-12-07T00:00:00.250000+00:00", active=True,
                                 cleared=None, cleared_value=None, severity="fault")],
           "active": {"fault": 1, "warning": 0}}
    assert _text(doc).splitlines() == [
        "seoul/bank1 WARNING cell_temp_high: raised 2026-12-07 09:00:00.250000+09:00 (since "
        "2026-12-07 08:59:50+09:00) (value 61.5), cleared 2026-12-07 09:02:05+09:00 after "
        "2m15s (value 55)",
        "utc/bank1 FAULT cell_temp_high: raised 2026-12-07 00:00:00.250000+00:00 (value 61.5), "
        "ACTIVE for 2m15s",
        "2 episode(s) listed; active now: 1 fault(s), 0 warning(s)"]
