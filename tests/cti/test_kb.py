"""The knowledge base: the shipped articles, ranked search, refusals of bad files and bad queries.

Search runs on the articles in config/kb/ (what agents get) and on folders written by the tests; the
API is exercised through the real application (create_app + its lifespan) with an HTTP client."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from cti.kb import DEFAULT_KB, KbError, KnowledgeBase, kb_folder, parse_article
from engine.app import create_app
from engine.configfile import load_file
from engine.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shipped() -> KnowledgeBase:
    kb = KnowledgeBase(DEFAULT_KB)
    kb.refresh()
    return kb


def top(kb: KnowledgeBase, query: str) -> str:
    hits = kb.search(query)
    assert hits, f"nothing for {query!r}"
    return hits[0].article.slug


def test_the_shipped_articles_parse_and_answer_what_callers_ask(shipped: KnowledgeBase) -> None:
    assert shipped.errors == []
    assert 6 <= len(shipped.articles) <= 10
    for a in shipped.articles.values():
        assert a.title and a.body.strip() and a.keywords, a.slug
    assert top(shipped, "when is my garbage day") == "garbage-day"
    assert top(shipped, "missed green bin pickup") == "garbage-day"
    assert top(shipped, "there is a hole in the road") == "pothole-reporting"
    assert top(shipped, "how do I dispute a parking ticket") == "parking-tickets"
    assert top(shipped, "tax instalment due date") == "property-tax-due-dates"
    assert top(shipped, "neighbour playing loud music") == "noise-complaints"
    assert top(shipped, "old couch") == "bulky-item-pickup"
    assert top(shipped, "water coming up through the road") == "water-main-break"
    assert top(shipped, "STREETLIGHTS flickering") == "streetlight-out", "case and plural folded"
    assert shipped.search("zzzz qqqq") == []
    everything = shipped.search("")
    assert len(everything) == len(shipped.articles) and [h.article.title for h in everything] == sorted(
        h.article.title for h in everything)


def test_ranking_prefers_the_title_and_scores_descend(shipped: KnowledgeBase) -> None:
    hits = shipped.search("tax bill penalty")
    assert hits[0].article.slug == "property-tax-due-dates"
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
    assert len(shipped.search("the", limit=3)) == 0, "stop words alone match nothing"
    assert len(shipped.search("", limit=3)) == 3


def test_articles_render_safely(tmp_path: Path) -> None:
    (tmp_path / "x.md").write_text("# Trick\nKeywords: html\n\n<script>alert(1)</script>\n\n"
                                   "[click](javascript:alert(1))\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    a = parse_article(tmp_path / "x.md")
    assert a.title == "Trick" and a.keywords == ("html",)
    assert "<script>" not in a.html and "&lt;script&gt;" in a.html, "raw HTML is shown as text"
    assert 'href="javascript:' not in a.html
    assert "<table>" in a.html


def test_bad_files_are_named_and_the_rest_still_serve(tmp_path: Path) -> None:
    shutil.copy(DEFAULT_KB / "pothole-reporting.md", tmp_path)
    (tmp_path / "latin1.md").write_bytes("# Déneigement\nLes rues".encode("latin-1"))
    (tmp_path / "untitled.md").write_text("Just text, no title\n")
    (tmp_path / "notes.txt").write_text("# Not an article (not .md)\n")
    kb = KnowledgeBase(tmp_path)
    assert [h.article.slug for h in kb.search("pothole")] == ["pothole-reporting"]
    assert len(kb.errors) == 2
    assert any("latin1.md" in e and "not UTF-8" in e for e in kb.errors)
    assert any("untitled.md:1" in e and "# Title" in e for e in kb.errors)
    with pytest.raises(KbError, match="untitled.md"):
        parse_article(tmp_path / "untitled.md")


def test_an_edited_folder_is_read_again(tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path)
    assert kb.search("snow") == []
    (tmp_path / "snow.md").write_text("# Snow clearing\nKeywords: plow, plough\n\nMain roads first.\n")
    assert top(kb, "when will my street be plowed") == "snow"
    (tmp_path / "snow.md").unlink()
    assert kb.search("snow") == []


def test_the_kb_folder_is_beside_the_site_file_or_the_shipped_one(tmp_path: Path) -> None:
    assert kb_folder(tmp_path / "switchboard.yaml") == DEFAULT_KB
    (tmp_path / "kb").mkdir()
    assert kb_folder(tmp_path / "switchboard.yaml") == tmp_path / "kb"


# --- the API ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("kb")
    shutil.copy(REPO / "config" / "switchboard.yaml", tmp / "switchboard.yaml")
    app = create_app(Settings(data_dir=tmp / "data"), load_file(tmp / "switchboard.yaml"))
    with TestClient(app) as c:
        token = c.post("/api/v1/auth/login", json={"username": "alice", "password": "alice-demo"}).json()
        c.headers["Authorization"] = f"Bearer {token['access_token']}"
        yield c


def test_kb_api_search_and_article(client: TestClient) -> None:
    r = client.get("/api/v1/kb", params={"q": "parking ticket"})
    assert r.status_code == 200
    body = r.json()
    assert body["items"][0]["slug"] == "parking-tickets"
    assert body["items"][0]["url"] == "/api/v1/kb/parking-tickets"
    assert body["items"][0]["summary"] and body["unreadable"] == []
    article = client.get("/api/v1/kb/parking-tickets").json()
    assert article["title"] == "Parking tickets: paying and disputing"
    assert "<h2>Disputing</h2>" in article["html"] and article["markdown"].startswith("A parking ticket")
    assert len(client.get("/api/v1/kb", params={"limit": 2}).json()["items"]) == 2


def test_kb_api_refuses_bad_input_with_problems(client: TestClient) -> None:
    r = client.get("/api/v1/kb/no-such-article")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "/problems/unknown-article" and "no-such-article" in r.json()["detail"]
    r = client.get("/api/v1/kb", params={"q": "x" * 201})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    r = client.get("/api/v1/kb", params={"limit": 0})
    assert r.status_code == 422
    anonymous = httpx.Client(transport=client._transport, base_url=str(client.base_url))
    assert anonymous.get("/api/v1/kb").status_code == 401
