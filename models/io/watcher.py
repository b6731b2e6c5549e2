"""One artifact watcher, one policy, for every reader of the artifact store.

The API (its bundle of models) and the stream workers (their item space) both
use :class:`ArtifactWatcher`. Each poll, for every kind it watches:

* read the published version (in a worker thread: with a remote store it is a
  request); nothing to do when it is the one served;
* load it in a worker thread (never on the event loop): the store verifies the
  checksums, then the kind's loader builds the served object and validates it,
  raising on a bad artifact;
* on success, hand the object to ``swap`` (one reference assignment on the
  caller's side);
* on failure, keep serving the old object, remember the failure (version, text
  with the store's location hidden) and do not try that version again until a
  backoff has passed: ``retry_s`` after the first failure, doubling with each
  further one, at most ``retry_max_s``. A newly published version is tried at
  once;
* when nothing of that kind is served yet and the published version fails,
  serve the newest older version that loads until a good one is published.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from models.io.artifacts import Artifact, ArtifactError, ArtifactStore, without_paths

log = logging.getLogger(__name__)

LOAD_ERRORS = (ArtifactError, OSError, ValueError, KeyError, RuntimeError)
"""What a loader raises for a bad artifact; anything else is a bug and propagates."""

Loader = Callable[[Artifact], Any]
"""Builds and validates the served object of one verified artifact version."""


@dataclass(frozen=True)
class Failure:
    """A version that failed to load: why, how often in a row, when it may be tried again."""

    version: str
    text: str
    attempts: int
    retry_at: float

    def __str__(self) -> str:
        return f"{self.version}: {self.text}"


def retry_delay(attempts: int, retry_s: float, retry_max_s: float) -> float:
    """Wait before trying a version again after ``attempts`` failures in a row."""
    return float(min(retry_max_s, retry_s * 2.0 ** min(attempts, 62)))


class ArtifactWatcher:
    """Keeps the served object of each watched kind on the newest version that loads.

    ``served(kind)`` is the version in service (None: nothing yet); ``swap(kind,
    version, obj)`` puts a loaded object in service; ``on_failure(kind, failure)`` is
    told of every failed attempt on a published version (for metrics and status).
    ``clock`` is a monotonic clock in seconds.
    """

    def __init__(
        self,
        store: ArtifactStore,
        loaders: Mapping[str, Loader],
        served: Callable[[str], str | None],
        swap: Callable[[str, str, Any], None],
        *,
        on_failure: Callable[[str, Failure], None] | None = None,
        retry_s: float = 2.0,
        retry_max_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.loaders = dict(loaders)
        self.served = served
        self.swap = swap
        self.on_failure = on_failure
        self.retry_s = retry_s
        self.retry_max_s = retry_max_s
        self.clock = clock
        self.failures: dict[str, Failure] = {}
        """The last failure per kind, until the version it names is served."""
        self._polling = asyncio.Lock()  # polls never overlap, so a version loads once

    def _load(self, kind: str, version: str) -> Any:
        return self.loaders[kind](self.store.load(kind, version))

    def _newest_loadable(self, kind: str, bad: str) -> tuple[str, Any] | None:
        """The newest version older than ``bad`` that loads, with its object, or None."""
        for version in reversed(self.store.versions(kind)):
            if version >= bad:
                continue
            try:
                return version, self._load(kind, version)
            except LOAD_ERRORS as exc:
                log.warning("older %s %s does not load either: %s", kind, version, exc)
        return None

    def _waiting(self, kind: str, version: str) -> bool:
        """Whether ``version`` failed and its backoff has not passed yet."""
        failure = self.failures.get(kind)
        return (
            failure is not None and failure.version == version and self.clock() < failure.retry_at
        )

    def _refuse(self, kind: str, version: str, exc: BaseException) -> Failure:
        last = self.failures.get(kind)
        attempts = last.attempts + 1 if last is not None and last.version == version else 1
        failure = Failure(
            version,
            without_paths(str(exc), self.store.root),
            attempts,
            self.clock() + retry_delay(attempts, self.retry_s, self.retry_max_s),
        )
        self.failures[kind] = failure
        return failure

    def _serve(self, kind: str, version: str, obj: Any) -> None:
        failure = self.failures.get(kind)
        if failure is not None and failure.version == version:
            del self.failures[kind]
        self.swap(kind, version, obj)
        log.info("serving %s %s", kind, version)

    async def check_kind(self, kind: str) -> bool:
        """Load and swap in the published version of one kind if it is due; whether it swapped."""
        version = await asyncio.to_thread(self.store.current_version, kind)
        current = self.served(kind)
        if version is None or version == current or self._waiting(kind, version):
            return False
        try:
            obj = await asyncio.to_thread(self._load, kind, version)
        except LOAD_ERRORS as exc:
            failure = self._refuse(kind, version, exc)
            log.error(
                "keeping %s %s: %s (attempt %d; next try in %.0f s)",
                kind,
                current,
                exc,
                failure.attempts,
                failure.retry_at - self.clock(),
            )
            if self.on_failure is not None:
                self.on_failure(kind, failure)
            if current is not None:
                return False
            older = await asyncio.to_thread(self._newest_loadable, kind, version)
            if older is None:
                return False
            log.warning("serving older %s %s until a good version is published", kind, older[0])
            self._serve(kind, *older)
            return True
        self._serve(kind, version, obj)
        return True

    async def check(self) -> list[str]:
        """One poll of every watched kind; the kinds swapped. A poll that starts while
        another runs waits for it (and then finds the version it loaded served)."""
        async with self._polling:
            return [kind for kind in self.loaders if await self.check_kind(kind)]

    async def run(self, interval_s: float) -> None:
        """Poll forever; an unexpected error is logged and the next poll goes ahead."""
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("artifact watcher error")
            await asyncio.sleep(interval_s)
