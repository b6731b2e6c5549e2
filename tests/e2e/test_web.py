"""The web page in headless Chromium against a real stack: the session broker and Redis,
a stream worker process, real artifacts, and the API under uvicorn. A skip clicked in the
page travels API -> broker -> worker -> Redis and the next list reflects it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
import uvicorn
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright
from pydantic import SecretStr

from api.app import create_app
from encore.services import Proc, free_port
from models.settings import ApiSettings, ArtifactSettings, KafkaSettings, RedisSettings, Settings
from tests.apikit import Built, build
from tests.streamkit import PARTITIONS, StreamEnv, redis_db_url

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")  # Debian's; never a downloaded browser build
SHOTS = ROOT / "var" / "e2e-screenshots"
USER = "demo:u5"
TIMEOUT_MS = 15_000


@dataclass
class Stack:
    base: str
    built: Built
    env: StreamEnv


@contextlib.contextmanager
def _serve(settings: Settings) -> Iterator[str]:
    """The API under uvicorn in a thread, once it answers and its producer is connected."""
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        res = getattr(app.state, "resources", None)
        if server.started and res is not None and res.producer is not None:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the API did not start with a connected producer")
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def stack(
    broker: Proc, redis_server: Proc, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    run_dir = tmp_path_factory.mktemp("web")
    url = redis_db_url(redis_server.address, 12)
    redis.Redis.from_url(url).flushdb()
    env = StreamEnv(
        broker, url, run_dir, extra_env={"ENCORE_STREAM_APP_ID": f"web-e2e-{uuid.uuid4().hex[:8]}"}
    )
    built = build(run_dir / "artifacts")  # where the worker's ENCORE_ARTIFACTS_ROOT points
    asyncio.run(env.create_topics())
    env.start_worker("web-worker")
    try:
        asyncio.run(env.produce([*built.demo.tracks, *built.demo.interactions]))
        asyncio.run(env.wait_applied(limit_s=120))
        settings = Settings(
            kafka=KafkaSettings(bootstrap=broker.address, partitions=PARTITIONS),
            redis=RedisSettings(url=SecretStr(url)),
            artifacts=ArtifactSettings(root=run_dir / "artifacts"),
            api=ApiSettings(dependency_timeout_s=1.0),
        )
        with _serve(settings) as base:
            yield Stack(base, built, env)
    finally:
        env.stop_workers()


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[BrowserContext]:
    """Headless Debian Chromium with an empty profile (after the stack: Playwright's sync
    API keeps an event loop running, so the stack's asyncio.run calls come first)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (dev.py test installs it)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(TIMEOUT_MS)
        yield context
        context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    page.close()
    assert errors == [], f"script errors in the page: {errors}"


def _open(page: Page, stack: Stack, view: str) -> None:
    page.goto(f"{stack.base}/#{view}")
    expect(page.locator("body[data-ready=true]")).to_be_attached()


def _rows(page: Page, list_id: str) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(  # type: ignore[no-any-return]
        f"#{list_id} li.track",
        "els => els.map(e => ({id: e.dataset.trackId, artist: e.dataset.artist}))",
    )


def _first(rows: list[dict[str, Any]], artist: str) -> int:
    return next((i for i, r in enumerate(rows) if r["artist"] == artist), len(rows))


def _skip(page: Page, index: int) -> list[dict[str, Any]]:
    """Click skip on a row; returns the list once the page says the worker applied it."""
    page.locator(f'#recs button[data-act="skip"][data-index="{index}"]').click()
    expect(page.locator("#rec-change")).to_contain_text("Applied by the stream worker")
    return _rows(page, "recs")


def test_skipping_an_artist_changes_the_list(page: Page, stack: Stack) -> None:
    _open(page, stack, "discover")
    expect(page.locator("#user-chips button", has_text="demo:u1")).to_be_visible()
    page.fill("#user-id", USER)
    page.press("#user-id", "Enter")
    expect(page.locator("#recs li.track")).to_have_count(20)
    expect(page.locator("#rec-arm")).not_to_be_empty()
    expect(page.locator("#rec-latency")).to_contain_text("ms")
    before = _rows(page, "recs")
    artist = before[0]["artist"]
    page.screenshot(path=str(SHOTS / "discover-before.png"), full_page=True)

    after = _skip(page, 0)
    assert before[0]["id"] not in [r["id"] for r in after]
    skipped = {before[0]["id"]}
    again = _first(after, artist)
    if again < len(after):  # skip a second track of the same artist
        skipped.add(after[again]["id"])
        after = _skip(page, again)
    page.screenshot(path=str(SHOTS / "discover-after-skip.png"), full_page=True)
    assert skipped.isdisjoint(r["id"] for r in after)
    assert _first(after, artist) > _first(before, artist), (artist, before, after)
    expect(page.locator("#recs .change").first).to_be_visible()  # moved rows are marked


def test_mood_search_shows_the_detected_mood_and_the_map(page: Page, stack: Stack) -> None:
    _open(page, stack, "mood")
    page.fill("#mood-query", "calm music to fall asleep")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#mood-results li.track").first).to_be_visible()
    arousal = page.locator("#mood-arousal .scale-value")
    assert float(arousal.get_attribute("data-value") or "nan") < 0
    assert arousal.inner_text().startswith("-")
    expect(page.locator("#mood-label")).not_to_be_empty()
    page.screenshot(path=str(SHOTS / "mood-search.png"), full_page=True)

    page.get_by_role("link", name="Show on the mood map").click()
    expect(page.locator("#mood-map .hits circle").first).to_be_attached()
    assert page.locator("#mood-map .catalog circle").count() == len(stack.built.demo.tracks)
    expect(page.locator("#map-query")).to_be_attached()
    expect(page.locator("#map-title")).to_contain_text("calm music to fall asleep")
    page.screenshot(path=str(SHOTS / "mood-map.png"), full_page=True)

    some = httpx.get(f"{stack.base}/v1/catalog/moods", params={"limit": 7}).json()
    assert len(some) == 7
    assert {"track_id", "title", "artist", "valence", "arousal"} <= set(some[0])
    assert some[-1]["track_id"] != stack.built.demo.tracks[6].track_id  # spread, not the head


def test_track_page_shows_metadata_similar_tracks_and_radio(page: Page, stack: Stack) -> None:
    track = stack.built.demo.tracks[10]
    title, artist = str(track.title), str(track.artist)
    _open(page, stack, "discover")
    page.goto(f"{stack.base}/#track/{track.track_id}")
    expect(page.locator("#track-heading")).to_have_text(title)
    facts = page.locator("#track-facts")
    expect(facts).to_contain_text(artist)
    expect(facts).to_contain_text("link unknown")
    expect(page.locator("#track-similar li.track")).to_have_count(10)
    expect(page.locator("#track-radio-list li.track").first).to_be_visible()
    radio_artists = page.eval_on_selector_all(
        "#track-radio-list li.track", "els => els.map(e => e.dataset.artist)"
    )
    assert artist not in radio_artists
    page.screenshot(path=str(SHOTS / "track-page.png"), full_page=True)

    page.get_by_role("link", name="Open this radio as its own page").click()
    expect(page.locator("#track-heading")).to_have_text(f"Radio: {artist}")

    page.goto(f"{stack.base}/#track/no-such-track")
    expect(page.locator("#track-error")).to_contain_text("unknown track 'no-such-track'")


def test_operator_panel_shows_lag_artifacts_and_bandit(page: Page, stack: Stack) -> None:
    _open(page, stack, "operator")
    stream = page.locator("#ops-stream")
    expect(stream.locator("table")).to_contain_text("interactions")
    expect(page.locator("#ops-artifacts")).to_contain_text(stack.built.als_version)
    expect(page.locator("#ops-artifacts")).to_contain_text(stack.built.content_version)
    expect(page.locator("#ops-rate")).not_to_have_text("…")  # a second poll gave a rate
    expect(page.locator("#ops-bandit table")).to_contain_text("balanced")
    expect(page.locator("#ops-dead-total")).to_be_visible()
    expect(page.locator("#ops-procs")).to_contain_text("Not started by encore up")
    # off-policy estimates from a real `encore ope` run over this stack's served lists
    ope = _run_ope(stack)
    assert ope["lists"] >= 1
    expect(page.locator("#ops-ope table")).to_contain_text("DR")
    expect(page.locator("#ops-ope table")).to_contain_text(f"{ope['lists']} lists")
    # not clicked: the session broker's dead letters belong to other tests too
    expect(page.get_by_role("button", name="Redrive dead letters")).to_be_enabled()
    expect(page.get_by_role("button", name="Retrain from the event log")).to_be_enabled()
    page.screenshot(path=str(SHOTS / "operator.png"), full_page=True)


def _run_ope(stack: Stack) -> dict[str, Any]:
    """`encore ope` as a process against the stack, once a served list is on the topic."""
    r = httpx.get(f"{stack.base}/v1/users/{USER}/recommendations", timeout=30)
    assert r.status_code == 200, r.text
    env = {
        **os.environ,
        "ENCORE_KAFKA_BOOTSTRAP": stack.env.broker.address,
        "ENCORE_KAFKA_PARTITIONS": str(PARTITIONS),
        "ENCORE_REDIS_URL": stack.env.redis_url,
    }
    for _ in range(5):
        run = subprocess.run(
            [sys.executable, "-m", "encore.cli", "ope", "--json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=120,
            check=True,
        )
        result: dict[str, Any] = orjson.loads(run.stdout)
        if result["lists"]:
            return result
        time.sleep(1)
    return result


def _wav(seconds: float = 0.5, rate: int = 8000) -> bytes:
    frames = b"\x00\x00" * int(seconds * rate)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(frames)) + frames
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_identify_answers_or_says_why_not(page: Page, stack: Stack, tmp_path: Path) -> None:
    clip = tmp_path / "clip.wav"
    clip.write_bytes(_wav())
    _open(page, stack, "identify")
    page.set_input_files("#identify-file", str(clip))
    page.get_by_role("button", name="Identify", exact=True).click()
    answer = page.locator("#identify-error:visible, #identify-body .match")
    expect(answer.first).to_be_visible()
    status = httpx.post(f"{stack.base}/v1/identify", files={"file": clip.read_bytes()}).status_code
    if status in (404, 405, 501):
        expect(page.locator("#identify-error")).to_contain_text("not available")
    elif status >= 400:  # half a second of silence is refused with a reason
        expect(page.locator("#identify-error")).to_contain_text(f"answered {status}")
    page.screenshot(path=str(SHOTS / "identify.png"), full_page=True)


def test_phone_width_has_no_sideways_scroll(browser: BrowserContext, stack: Stack) -> None:
    page = browser.new_page()
    try:
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"{stack.base}/#discover")
        expect(page.locator("body[data-ready=true]")).to_be_attached()
        page.keyboard.press("Tab")  # the skip link comes first and shows itself
        expect(page.locator(".skip-link")).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("#main")).to_be_focused()
        page.get_by_role("button", name="demo:u2").press("Enter")
        expect(page.locator("#recs li.track").first).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        page.screenshot(path=str(SHOTS / "discover-phone.png"), full_page=True)
    finally:
        page.close()


def test_api_docs_render_from_this_server_only(page: Page, stack: Stack) -> None:
    requests: list[str] = []
    blocked: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text else None)
    page.goto(f"{stack.base}/docs")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    assert page.locator(".opblock-summary-path").count() >= 12
    page.screenshot(path=str(SHOTS / "docs.png"))
    assert requests
    assert all(u.startswith(stack.base + "/") for u in requests), requests
    assert blocked == []
