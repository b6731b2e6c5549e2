"""The web page's files and its two helper routes (the page itself runs in tests/e2e)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from models.settings import ApiSettings, ArtifactSettings, Mode, Settings

STRONG = "k" * 20


def _client(tmp_path: Path, address: str = "127.0.0.1", **settings: object) -> TestClient:
    base = Settings(artifacts=ArtifactSettings(root=tmp_path / "none"))
    return TestClient(create_app(base.model_copy(update=settings)), client=(address, 50_000))


def test_the_page_and_its_modules_are_served_with_a_strict_policy(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert '<script type="module" src="/web/app.js">' in page.text
        for name in ("app.js", "lib.js", "discover.js", "mood.js", "track.js", "operator.js"):
            r = client.get(f"/web/{name}")
            assert r.status_code == 200, name
            assert r.headers["content-type"].startswith("text/javascript")
        assert client.get("/web/app.css").headers["content-type"].startswith("text/css")
        for bad in ("__init__.py", "index.html", "..%2Fdeps.py", "nope.js"):
            assert client.get(f"/web/{bad}").status_code == 404, bad


def test_dev_keys_are_offered_only_in_development_without_configured_keys(
    tmp_path: Path,
) -> None:
    for local in ("127.0.0.1", "127.8.0.3", "::1", "::ffff:127.0.0.1"):
        with _client(tmp_path, local) as client:
            assert client.get("/v1/ui/config").json() == {
                "dev_keys": {"ingest": "dev-ingest-key", "admin": "dev-admin-key"}
            }, local
    for remote in ("192.168.1.20", "10.0.0.5", "2001:db8::1", "::ffff:10.0.0.5", "testclient"):
        with _client(tmp_path, remote) as client:  # anyone else asking a dev server
            assert client.get("/v1/ui/config").json() == {"dev_keys": None}, remote
    configured = ApiSettings(api_keys=[SecretStr(STRONG)])
    with _client(tmp_path, api=configured) as client:
        assert client.get("/v1/ui/config").json() == {"dev_keys": None}
    production = ApiSettings(api_keys=[SecretStr(STRONG)], admin_keys=[SecretStr(STRONG + "a")])
    with _client(tmp_path, mode=Mode.PRODUCTION, api=production) as client:
        assert client.get("/v1/ui/config").json() == {"dev_keys": None}


def test_catalog_moods_say_why_without_a_content_model(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        r = client.get("/v1/catalog/moods")
        assert r.status_code == 503
        assert "no content model" in r.json()["detail"]
        for limit in (0, -1, 20_001):  # bounded
            assert client.get("/v1/catalog/moods", params={"limit": limit}).status_code == 422
