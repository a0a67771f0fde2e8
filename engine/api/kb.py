"""The knowledge base for agents: GET /kb?q= (ranked search) and GET /kb/{slug} (one article as HTML)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from cti.kb import Article, KnowledgeBase, kb_folder
from engine.api.deps import agent_user
from engine.api.problems import ApiProblem
from engine.auth import Principal

router = APIRouter(prefix="/kb", tags=["knowledge base"])


def knowledge_base(request: Request) -> KnowledgeBase:
    state = request.app.state
    kb: KnowledgeBase | None = getattr(state, "kb", None)
    if kb is None:
        kb = state.kb = KnowledgeBase(kb_folder(state.site.path))
    return kb


def _brief(a: Article) -> dict[str, Any]:
    return {"slug": a.slug, "title": a.title, "summary": a.summary(), "keywords": list(a.keywords),
            "url": f"/api/v1/kb/{a.slug}"}


@router.get("", summary="Search the articles (best first); no q lists them all")
async def search(request: Request, q: str = Query("", max_length=200), limit: int = Query(10, ge=1, le=50),
                 p: Principal = Depends(agent_user)) -> dict[str, Any]:
    kb = knowledge_base(request)
    hits = kb.search(q, limit=limit)
    return {"query": q, "items": [{**_brief(h.article), "score": round(h.score, 3)} for h in hits],
            "total": len(hits), "unreadable": kb.errors}


@router.get("/{slug}", summary="One article: title, Markdown and HTML")
async def article(slug: str, request: Request, p: Principal = Depends(agent_user)) -> dict[str, Any]:
    a = knowledge_base(request).get(slug)
    if a is None:
        raise ApiProblem(404, "unknown-article", "Unknown article", f"no article {slug!r}")
    return {**_brief(a), "markdown": a.body, "html": a.html}
