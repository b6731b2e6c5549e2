"""The per-track link-health state machine.

States: UNKNOWN (never checked, or only transient failures), VALID, DEAD, MOVED
(with the redirect target), REQUIRES_AUTH.

* A link check's status is authoritative: VALID, MOVED, REQUIRES_AUTH and DEAD
  move straight there (DEAD checks come from 404/410 answers).
* A check with status UNKNOWN (timeout, 5xx) and a playback failure without a
  telling HTTP code are transient: they count, and after ``dead_after``
  consecutive failures the link is DEAD.
* A playback failure with 404/410 is DEAD; with 401/403 it is REQUIRES_AUTH.
* Any later success (VALID) recovers the link and resets the failure streak.
* An event older than the state's last status change counts but never changes
  the status (a late failure cannot undo a newer success).
"""

from __future__ import annotations

from dataclasses import dataclass

from models.events import LinkCheck, LinkStatus, PlaybackFailure

DEAD_CODES = frozenset({404, 410})
AUTH_CODES = frozenset({401, 403, 407})


@dataclass(frozen=True, slots=True)
class LinkHealth:
    """State of one track's link."""

    status: str = LinkStatus.UNKNOWN.value
    url: str | None = None
    redirect_url: str | None = None
    http_code: int | None = None
    checks: int = 0
    failures: int = 0
    streak: int = 0
    last_checked_ms: int = 0
    last_ok_ms: int = 0
    last_failure_ms: int = 0
    changed_ms: int = 0


def next_link_health(
    state: LinkHealth, event: LinkCheck | PlaybackFailure, *, dead_after: int = 3
) -> LinkHealth:
    """The state after one link check or playback failure."""
    t = event.occurred_ms
    late = t < state.changed_ms
    checks, failures, streak = state.checks, state.failures, state.streak
    if isinstance(event, LinkCheck):
        checks += 1
        status = event.status.value
        ok = event.status in (LinkStatus.VALID, LinkStatus.MOVED)
        if event.status is LinkStatus.UNKNOWN:
            failures += 1
            streak += 1
            status = LinkStatus.DEAD.value if streak >= dead_after else state.status
        elif event.status is LinkStatus.DEAD:
            failures += 1
            streak += 1
        elif event.status is LinkStatus.REQUIRES_AUTH:
            streak = 0
        else:
            streak = 0
        url: str | None = event.url
        redirect, code = event.redirect_url, event.http_code
    else:
        ok = False
        failures += 1
        streak += 1
        code = event.http_code
        if code in DEAD_CODES:
            status = LinkStatus.DEAD.value
        elif code in AUTH_CODES:
            status = LinkStatus.REQUIRES_AUTH.value
        else:
            status = LinkStatus.DEAD.value if streak >= dead_after else state.status
        url, redirect = event.url or state.url, state.redirect_url
    if late:
        return LinkHealth(
            status=state.status,
            url=state.url,
            redirect_url=state.redirect_url,
            http_code=state.http_code,
            checks=checks,
            failures=failures,
            streak=state.streak,
            last_checked_ms=state.last_checked_ms,
            last_ok_ms=max(state.last_ok_ms, t if ok else 0),
            last_failure_ms=max(state.last_failure_ms, 0 if ok else t),
            changed_ms=state.changed_ms,
        )
    return LinkHealth(
        status=status,
        url=url,
        redirect_url=redirect if status == LinkStatus.MOVED.value else None,
        http_code=code,
        checks=checks,
        failures=failures,
        streak=streak,
        last_checked_ms=t if isinstance(event, LinkCheck) else state.last_checked_ms,
        last_ok_ms=t if ok else state.last_ok_ms,
        last_failure_ms=state.last_failure_ms if ok else t,
        changed_ms=t,
    )
