"""Cron expressions for APScheduler 3 in UTC, with standard cron weekdays (0 or 7 = Sunday;
APScheduler 3 numbers them from Monday), 6-field expressions with seconds first, @macros, and
the newest fire time in a window (for fires missed while the daemon was down).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

TICK = timedelta(microseconds=1)
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def _weekday(token: str) -> int:
    if token.lower()[:3] in DAY_NAMES:
        return DAY_NAMES.index(token.lower()[:3])
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token) % 7
    raise ValueError(f"weekday {token!r} is not 0-7 (0 and 7 are Sunday) or sun..sat")


def _weekdays(expr: str) -> str:
    """Standard cron weekdays (0 = Sunday) to APScheduler 3 names, whose numbers start on Monday."""
    days: set[int] = set()
    for part in expr.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"weekday step {step_text!r} is not a positive number")
        if base in ("*", "?"):
            first, last = 0, 6
        elif "-" in base:
            a, b = base.split("-", 1)
            first, last = _weekday(a), _weekday(b)
            last = 7 if last == 0 and b.strip() == "7" else last
            if first > last:
                raise ValueError(f"weekday range {base!r} runs backwards")
        else:
            first = last = _weekday(base)
            if step:
                last = 6
        days.update(d % 7 for d in range(first, last + 1, step or 1))
    if len(days) == 7:
        return "*"
    return ",".join(DAY_NAMES[d] for d in sorted(days))


def parse_cron(expr: str) -> CronTrigger:
    """5 fields (minute hour day month weekday), 6 with seconds first, or a macro; UTC."""
    fields = MACROS.get(expr.strip().lower(), expr).split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise ValueError(
            f"{len(fields)} fields; expected 5 (minute hour day month weekday), "
            "6 with seconds first, or @hourly/@daily/@weekly/@monthly/@yearly"
        )
    second, minute, hour, day, month, weekday = fields
    if day not in ("*", "?") and weekday not in ("*", "?"):
        raise ValueError("restrict the day of month or the weekday, not both (cron ORs them)")
    return CronTrigger(
        second=second,
        minute=minute,
        hour=hour,
        day="*" if day == "?" else day,
        month=month,
        day_of_week=_weekdays(weekday),
        timezone=UTC,
    )


def latest_fire(trigger: CronTrigger, after: datetime, now: datetime) -> datetime | None:
    """The newest fire time in (after, now], or None when none falls in it. Probes forward from
    `after` while at most one slot is due; with more, the search probes back from `now` in
    doubling windows (a one-second cron with a day's window would take 86,400 steps forward)."""
    # The usual answers take one or two probes, not the ~10 of the search: none due (at start,
    # RecurringScheduler.catch_up, for each entry while the first jobs are being claimed) and the
    # one slot a timer fires.
    first = trigger.get_next_fire_time(None, after + TICK)
    if first is None or first > now:
        return None
    second = trigger.get_next_fire_time(first, first + TICK)
    if second is None or second > now:
        return first  # type: ignore[no-any-return]
    window = timedelta(seconds=1)
    while True:
        start = max(now - window, after + TICK)
        found = trigger.get_next_fire_time(None, start)
        if found is not None and found <= now:
            while True:
                following = trigger.get_next_fire_time(found, found + TICK)
                if following is None or following > now:
                    return found  # type: ignore[no-any-return]
                found = following
        if start == after + TICK:
            return None
        window *= 2
