"""Instants as people read them: one form in every letter, page and message of the command line.

The ledger and the bundle keep ISO 8601 with microseconds (`ledger.utc_text`);
a person reads "Wednesday 8 July 2020, 12:00 UTC", and beside it the same
instant where the reader is, when a time zone is known for them. A log line
(`voting serve`) begins with the compact "2020-07-08T12:00:05Z", which sorts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from voting.wording import ENGLISH, Wording


def zone_name(name: str) -> str:
    """A checked IANA time zone name, e.g. "America/New_York", for the configuration and electorate files."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone name such as Europe/Paris or America/New_York") from None
    return name


_DURATION = re.compile(r"(\d{1,5})([mhd])")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}


def duration(text: str) -> timedelta:
    """A length of time as people write it in the configuration and on the command line: "6h", "90m", "3d"."""
    found = _DURATION.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not a length of time such as 6h, 90m or 3d")
    return int(found.group(1)) * _UNITS[found.group(2)]


def _clock(moment: datetime) -> str:
    return f"{moment:%H:%M}" if moment.second == 0 else f"{moment:%H:%M:%S}"


def _day(moment: datetime, words: Wording, key: str = "time.date") -> str:
    return words(key, weekday=words.names("time.days")[moment.weekday()], day=moment.day,
                 month=words.names("time.months")[moment.month - 1], year=moment.year)


def readable_time(moment: datetime, zones: Iterable[str | None] = (), words: Wording = ENGLISH) -> str:
    """ "Wednesday 8 July 2020, 12:00 UTC (08:00 in New York)": seconds only when not zero, never fractions.

    Each named zone adds the local time, with its day when that differs; `words` gives the language.
    """
    utc = moment.astimezone(UTC)
    local = []
    for name in dict.fromkeys(z for z in zones if z and z != "UTC"):
        there = utc.astimezone(ZoneInfo(name))
        place = name.rpartition("/")[2].replace("_", " ")
        day = "" if there.date() == utc.date() else f"{_day(there, words, 'time.local_day')}, "
        local.append(day + words("time.at_place", time=_clock(there), place=place))
    return f"{_day(utc, words)}, {_clock(utc)} UTC" + (f" ({'; '.join(local)})" if local else "")


def parse_readable_time(text: str) -> datetime:
    """The instant of `readable_time`'s UTC form, "Wednesday 8 July 2020, 12:00 UTC"; the local times beside it are
    ignored. Raises ValueError unless the text is exactly that form, weekday included."""
    utc_part = text.strip().split(" (", 1)[0]
    for clock in ("%H:%M", "%H:%M:%S"):
        try:
            moment = datetime.strptime(utc_part, f"%A %d %B %Y, {clock} UTC").replace(tzinfo=UTC)
        except ValueError:
            continue
        if readable_time(moment) == utc_part:
            return moment
    raise ValueError(f"{text!r} is not a time such as \"Wednesday 8 July 2020, 12:00 UTC\"")


def log_time(moment: datetime) -> str:
    """ "2020-07-08T12:00:05Z": the compact form of a log line, which sorts and greps; never fractions."""
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def time_left(seconds: int) -> str:
    """ "2 h 05 min", "12 min 30 s", "40 s": how long until a deadline, to the second under an hour."""
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"
