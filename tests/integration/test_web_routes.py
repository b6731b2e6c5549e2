"""The web page's files and its two helper routes (the page itself runs in tests/e2e)."""

from __future__ import annotations

import re
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


def test_every_response_carries_a_referrer_policy(tmp_path: Path) -> None:
    app = create_app(Settings(artifacts=ArtifactSettings(root=tmp_path / "none")))

    async def boom() -> None:
        raise RuntimeError("an unhandled error")

    app.add_api_route("/boom", boom)
    with TestClient(app, raise_server_exceptions=False, client=("127.0.0.1", 5)) as client:
        answers = [
            client.get("/"),
            client.get("/healthz"),
            client.get("/web/app.js"),
            client.get("/v1/ui/config"),
            client.get("/nowhere"),  # 404
            client.get("/v1/catalog/moods", params={"limit": 0}),  # 422
            client.get("/v1/admin/status"),  # 401
            client.post("/v1/recommend", content=b"x" * 2_000_000),  # 413
            client.get("/docs"),
            client.get("/openapi.json"),
            client.get("/boom"),  # 500
        ]
    assert [r.status_code for r in answers][-1] == 500
    assert {r.status_code for r in answers} >= {200, 401, 404, 413, 422, 500}
    for r in answers:
        assert r.headers["referrer-policy"] == "no-referrer", r.request.url
        assert r.headers["x-content-type-options"] == "nosniff", r.request.url


def test_docs_load_nothing_from_other_sites(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "script-src 'self' 'unsafe-inline'" in csp
        assert "default-src 'self'" in csp
        links = re.findall(r'(?:src|href)="([^"]*)"', page.text)
        assert sorted(links) == [
            "/docs/assets/favicon-32x32.png",
            "/docs/assets/swagger-ui-bundle.js",
            "/docs/assets/swagger-ui.css",
        ]
        assert "http" not in page.text.split("<script>", 1)[1]  # the inline start-up script
        assert '"validatorUrl": null' in page.text
        for link in links:
            asset = client.get(link)
            assert asset.status_code == 200, link
            assert len(asset.content) > 100
        assert (
            client.get("/docs/assets/swagger-ui-bundle.js")
            .headers["content-type"]
            .startswith("text/javascript")
        )
        assert client.get("/docs/assets/index.html").status_code == 404
        assert client.get("/docs/assets/..%2F__init__.py").status_code == 404
        assert client.get("/redoc").status_code == 404
        assert client.get("/openapi.json").json()["info"]["title"] == "Encore"
