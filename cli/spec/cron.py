"""A cron schedule as a Kubernetes CronJob takes it, checked whole before it reaches the cluster.

The CronJob controller parses `spec.schedule` with robfig/cron v3's standard parser
(kubernetes pkg/controller/cronjob/utils.go: cron.ParseStandard): five fields, minute (0-59), hour
(0-23), day of month (1-31), month (1-12 or JAN-DEC), day of week (0-6 or SUN-SAT); each field a
comma list of `*`, `?` (day fields), `N`, `A-B`, each optionally `/STEP`; or one of the macros below.
The API server accepts any string and the controller only logs a parse failure, so a bad schedule
would sit on the cluster and never run: here it is one line instead. `TZ=`/`CRON_TZ=` prefixes are
refused too (Kubernetes 1.27+ refuses them; `task.time_zone` says the zone), as is robfig's `@every`
(not cron, and not in the docs). Names are case-insensitive, as in robfig.
"""

from __future__ import annotations

import re

MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# name, lowest, highest, names (numbered from `lowest`), whether `?` may stand for `*`
_FIELDS = (
    ("minute", 0, 59, (), False),
    ("hour", 0, 23, (), False),
    ("day of month", 1, 31, (), True),
    ("month", 1, 12, _MONTHS, False),
    ("day of week", 0, 6, _DAYS, True),
)
_NUMBER = re.compile(r"^[0-9]{1,2}$")
_HINT = 'five fields (minute hour day-of-month month day-of-week), e.g. "0 3 * * *", or @hourly, @daily, @weekly, @monthly, @yearly'


def problem(schedule: str) -> str | None:
    """None for a schedule the CronJob controller runs; else what is wrong with it, in words."""
    if not schedule.isascii() or not schedule.isprintable():
        return f"has a control or non-ASCII character; write {_HINT}"
    if schedule.startswith("@"):
        return None if schedule.lower() in MACROS else f"{schedule} is not a cron macro (valid: {', '.join(MACROS)})"
    if "=" in schedule:
        return "sets a time zone inside the schedule, which Kubernetes refuses; use task.time_zone instead"
    fields = schedule.split(" ")
    if len(fields) != 5 or "" in fields:
        return f"has {len(schedule.split())} field(s) (or extra spaces); write {_HINT}"
    for text, (name, low, high, names, question) in zip(fields, _FIELDS, strict=True):
        for part in text.split(","):
            if bad := _part(part, low, high, names, question):
                return f"{name} {text!r}: {bad}"
    return None


def _part(part: str, low: int, high: int, names: tuple[str, ...], question: bool) -> str | None:
    valid = f"valid: {low}-{high}" + (f" or {names[0].upper()}-{names[-1].upper()}" if names else "")
    span, slash, step = part.partition("/")
    if slash:
        if not _NUMBER.match(step) or int(step) == 0 or int(step) > high - low + 1:
            return f"step {step!r} is not a whole number from 1 to {high - low + 1}"
    if span == "*" or (question and span == "?"):
        return None
    start_text, dash, end_text = span.partition("-")
    start = _value(start_text, low, names)
    if start is None or not low <= start <= high:
        return f"{start_text!r} is out of range or not a number ({valid})"
    if not dash:
        return None
    end = _value(end_text, low, names)
    if end is None or not low <= end <= high:
        return f"{end_text!r} is out of range or not a number ({valid})"
    if end < start:
        return f"range {span} runs backwards; write the lower bound first"
    return None


def _value(text: str, low: int, names: tuple[str, ...]) -> int | None:
    if _NUMBER.match(text):
        return int(text)
    if text.lower() in names:
        return names.index(text.lower()) + low
    return None



# An IANA zone name as time.LoadLocation finds it in the CronJob controller's tzdata: Area/Location, or UTC.
_ZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$")


def zone_problem(zone: str) -> str | None:
    """None for an IANA time zone this machine's tz database knows; `Local` means the controller's zone, so it is refused."""
    import zoneinfo

    known = zoneinfo.available_timezones()
    if zone == "Local" or not _ZONE.match(zone) or (known and zone not in known):
        return f"{zone!r} is not an IANA time zone name (e.g. UTC, Europe/Berlin, America/New_York)"
    return None
