"""The agents' knowledge base: short Markdown articles in `config/kb/`, searched by a ranked word match.

An article is one `<slug>.md` file: its first `# ` heading is the title, an optional `Keywords:` line
adds search words that need not appear in the text (what residents say: "garbage" for a green-bin
article), the rest is the body. Search is Okapi BM25 over title (counted three times), keywords (twice)
and body, with the Snowball English stemmer so "tickets" finds "ticket"; a few dozen articles need nothing
heavier. The folder is read again when a file in it changes, so an edit shows without a restart.
A file that is not UTF-8 or has no title is refused with its name, and the others still serve.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import snowballstemmer  # type: ignore[import-untyped]
from markdown_it import MarkdownIt

DEFAULT_KB = Path(__file__).resolve().parents[1] / "config" / "kb"
MAX_ARTICLE_BYTES = 64 * 1024
K1, B = 1.2, 0.75  # BM25's usual constants
TITLE_WEIGHT, KEYWORD_WEIGHT = 3, 2
STOP = frozenset({"a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how",
                  "i", "if", "in", "is", "it", "my", "of", "on", "or", "the", "to", "what", "when", "where",
                  "which", "who", "why", "will", "with", "you", "your"})
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_stemmer = snowballstemmer.stemmer("english")  # "tickets", "ticketed" -> "ticket"
_stem_lock = threading.Lock()
_md = MarkdownIt("commonmark", {"html": False}).enable("table")  # raw HTML is shown as text, never run


class KbError(Exception):
    """An article that cannot be read; the message names the file."""


def terms(text: str) -> list[str]:
    words = [w.split("'")[0] for w in _WORD.findall(text.lower())]
    with _stem_lock:  # a Snowball stemmer keeps state while it works: one word at a time
        return list(_stemmer.stemWords([w for w in words if w and w not in STOP]))


@dataclass(frozen=True, slots=True)
class Article:
    slug: str
    title: str
    keywords: tuple[str, ...]
    body: str  # Markdown, without the title line

    @property
    def html(self) -> str:
        return str(_md.render(self.body))

    def summary(self, chars: int = 160) -> str:
        text = " ".join(line.strip() for line in self.body.splitlines()
                        if line.strip() and not line.lstrip().startswith(("#", "|", "-")))
        text = re.sub(r"[*_`\[\]]", "", re.sub(r"\]\([^)]*\)", "]", text))
        return text if len(text) <= chars else text[: chars - 1].rsplit(" ", 1)[0] + "…"


def parse_article(path: Path) -> Article:
    raw = path.read_bytes()
    if len(raw) > MAX_ARTICLE_BYTES:
        raise KbError(f"{path}: larger than {MAX_ARTICLE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise KbError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    lines = text.splitlines()
    title_at = next((i for i, line in enumerate(lines) if line.strip()), None)
    if title_at is None or not lines[title_at].startswith("# "):
        raise KbError(f"{path}:{(title_at or 0) + 1}: an article starts with its title as '# Title'")
    title = lines[title_at][2:].strip()
    keywords: tuple[str, ...] = ()
    rest = lines[title_at + 1:]
    for i, line in enumerate(rest):
        if not line.strip():
            continue
        if line.lower().startswith("keywords:"):
            keywords = tuple(k.strip() for k in line.split(":", 1)[1].split(",") if k.strip())
            rest = rest[:i] + rest[i + 1:]
        break
    return Article(path.stem, title, keywords, "\n".join(rest).strip() + "\n")


@dataclass(frozen=True, slots=True)
class Hit:
    article: Article
    score: float


class KnowledgeBase:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.articles: dict[str, Article] = {}
        self.errors: list[str] = []
        self._docs: dict[str, Counter[str]] = {}
        self._df: Counter[str] = Counter()
        self._avg_len = 1.0
        self._seen: tuple[tuple[str, int, int], ...] | None = None
        self._lock = threading.Lock()

    def _fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        if not self.folder.is_dir():
            return ()
        return tuple(sorted((p.name, st.st_mtime_ns, st.st_size)
                            for p in self.folder.glob("*.md") for st in [p.stat()]))

    def refresh(self) -> None:
        """Re-read the folder if any article was added, changed or removed since last time."""
        with self._lock:
            seen = self._fingerprint()
            if seen == self._seen:
                return
            articles, errors = {}, []
            for name, _, _ in seen:
                try:
                    a = parse_article(self.folder / name)
                    articles[a.slug] = a
                except (KbError, OSError) as exc:
                    errors.append(str(exc))
            docs = {s: Counter(terms(a.title) * TITLE_WEIGHT + terms(" ".join(a.keywords)) * KEYWORD_WEIGHT
                               + terms(a.body)) for s, a in articles.items()}
            self._df = Counter(t for d in docs.values() for t in d)
            self._avg_len = (sum(sum(d.values()) for d in docs.values()) / len(docs)) if docs else 1.0
            self.articles, self._docs, self.errors, self._seen = articles, docs, errors, seen

    def search(self, query: str, limit: int = 10) -> list[Hit]:
        """Best first; an empty query lists every article by title."""
        self.refresh()
        if not query.strip():
            return [Hit(a, 0.0) for a in sorted(self.articles.values(), key=lambda a: a.title)][:limit]
        words = set(terms(query))  # only stop words ("the"): nothing to match
        n = len(self._docs)
        hits = []
        for slug, doc in self._docs.items():
            length = sum(doc.values())
            score = 0.0
            for t in words:
                f = doc.get(t, 0)
                if f:
                    idf = math.log(1 + (n - self._df[t] + 0.5) / (self._df[t] + 0.5))
                    score += idf * f * (K1 + 1) / (f + K1 * (1 - B + B * length / self._avg_len))
            if score > 0:
                hits.append(Hit(self.articles[slug], score))
        hits.sort(key=lambda h: (-h.score, h.article.title))
        return hits[:limit]

    def get(self, slug: str) -> Article | None:
        self.refresh()
        return self.articles.get(slug)


def kb_folder(site_file: Path) -> Path:
    """`kb/` next to the site file, else the articles shipped in `config/kb/`."""
    beside = Path(site_file).parent / "kb"
    return beside if beside.is_dir() else DEFAULT_KB
