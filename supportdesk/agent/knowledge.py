"""Knowledge-base retrieval: BM25 over the published help-centre articles.

Used by the offline responder and by the ``search_knowledge`` tool. The index lives in
process memory and is rebuilt when the published articles change; every search checks
that with one aggregate query (count and latest ``updated_at``), so an admin's edit is
visible to the next question without a restart. Edits made with ``QuerySet.update()``
bypass ``updated_at`` and are only picked up by ``clear_cache()`` or the next real save.
"""

from __future__ import annotations

import math
import re
import threading
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Max
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from rank_bm25 import BM25Okapi

from supportdesk.agent.kb_data import CATALOGUE_TEXT
from supportdesk.agent.models import KnowledgeArticle

# How many times a title and the tags count relative to the body: a question usually
# names the topic ("returns", "gift card") that the title and tags carry.
TITLE_WEIGHT = 3
TAGS_WEIGHT = 2
SNIPPET_SENTENCES = 2
SNIPPET_CHARS = 320

# Confidence calibration (see ``best_answer``), tuned on the demo knowledge base and the
# questions in tests/agent/test_knowledge.py.
# A best article this far ahead of the runner-up ((s1 - s2) / s1) is not ambiguous …
CLEAR_MARGIN = 0.3
# … and one level with the runner-up loses this share of its confidence.
MARGIN_PENALTY = 0.4
# A BM25 score below this is thin evidence: a single common word scores 1 to 4, two
# distinctive ones 6 or more.
STRONG_SCORE = 6.0
# Product words the best article lacks count this share of their idf against coverage:
# they say what the question is about, not which policy answers it. Numbers (order
# numbers, quantities) the article lacks do not count at all.
CATALOGUE_WEIGHT = 0.15
# A retrieved article is never certain to answer the question.
MAX_CONFIDENCE = 0.95
MAX_QUERY_CHARS = 4000
MAX_QUERY_TERMS = 64

# Function words, and the filler of a support question ("can you tell me how long…").
_STOPWORD_TEXT = """
a about above after again against all also am an and any are aren as at be because been
before being below between both but by can cannot could couldn did didn do does doesn
doing don during each either else ever every few for from further get gets getting
got had hadn has hasn have haven having he her here hers herself him himself his how i
if im in into is isn it its itself ive just let lets like ll m may me might mine more
most much must mustn my myself need needs no nor not now of off oh ok okay on once only
or other ought our ours ourselves out over own please pls re really s same say says said
shall shan she should shouldn so some still such t than thank thanks that the their
theirs them themselves then there these they this those through thx to too under until
up upon us ve very want wanna wants was wasn we were weren what whats when where which
while who whom why will with won would wouldn y yet you your yours yourself yourselves
hi hello hey dear anything something everything nothing someone somebody anyone anybody
thing things stuff way know tell sure go goes going went gone come comes coming came
look looking see think take takes taking took new last ago yesterday today tonight
recently week try trying tried keep keeps kept one ones long many never already
able possible maybe actually soon lot lots bit kind sort guys happen happens happened
help
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_VOWELS = frozenset("aeiouy")
# A sentence ends at . ! or ? followed by a capital, a digit or a quote; "8 a.m. Eastern"
# is not a sentence break.
_SENTENCE_END = re.compile(r"(?<![ap]\.m\.)(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])")


def stem(word: str) -> str:
    """A light, deterministic suffix stripper applied to documents and queries alike.

    It does not need to produce words, only the same stem for the forms a customer and an
    article use: ship/shipping/shipped → ship, size/sizes/sizing → siz, delivery/delivered →
    deliver, cancel/cancelled/cancellation → cancel.
    """
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith(("ies", "ied")) and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("ing") and len(word) - 3 >= 3:
        word = word[:-3]
    elif word.endswith("ed") and len(word) - 2 >= 3:
        word = word[:-2]
    elif word.endswith("ation") and len(word) - 5 >= 4:
        word = word[:-5]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if (word.endswith("e") and len(word) > 3) or (
        word.endswith("y") and len(word) > 4 and word[-2] not in _VOWELS
    ):
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in _VOWELS and word[-1] != "s":
        word = word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lower-case content-word stems of ``text``, in order, stopwords removed."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("\u2019", "'")
    tokens: list[str] = []
    for match in _WORD.finditer(text):
        # "don't" → "don", "customer's" → "customer": the clitic carries no topic.
        word = match.group().split("'", 1)[0]
        if len(word) < 2 or word in STOPWORDS:
            continue
        tokens.append(stem(word))
    return tokens


CATALOGUE_TERMS = frozenset(tokenize(CATALOGUE_TEXT))


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


@dataclass(frozen=True)
class Hit:
    article_id: int
    slug: str
    title: str
    score: float
    snippet: str


@dataclass(frozen=True)
class Answer:
    hit: Hit | None
    # 0..1: how sure we are that ``hit`` answers the question (see ``best_answer``).
    confidence: float
    second_score: float
    # The idf-weighted share of the question's content words found in the best article.
    coverage: float


class _BM25(BM25Okapi):
    """BM25Okapi with Lucene's always-positive idf.

    rank_bm25's idf is log((N - n + .5) / (n + .5)): zero or negative for a term in half
    of the documents, so with a knowledge base of one or two articles nothing would ever
    match. log(1 + …) keeps the ranking and stays positive.
    """

    def _calc_idf(self, nd: dict[str, int]) -> None:
        for word, freq in nd.items():
            self.idf[word] = math.log(1 + (self.corpus_size - freq + 0.5) / (freq + 0.5))
        self.average_idf = sum(self.idf.values()) / len(self.idf) if self.idf else 0.0


@dataclass(frozen=True)
class _Doc:
    article_id: int
    slug: str
    title: str
    body: str
    category: str
    terms: frozenset[str]
    sentences: tuple[str, ...]
    sentence_terms: tuple[frozenset[str], ...]


class _Index:
    def __init__(self, key: tuple[int, datetime | None], articles: Iterable[KnowledgeArticle]):
        self.key = key
        self.docs: list[_Doc] = []
        corpus: list[list[str]] = []
        for article in articles:
            title = tokenize(article.title)
            tags = tokenize(article.tags.replace(",", " "))
            body = tokenize(article.body)
            tokens = title * TITLE_WEIGHT + tags * TAGS_WEIGHT + body
            sentences = tuple(split_sentences(article.body))
            self.docs.append(
                _Doc(
                    article_id=article.pk,
                    slug=article.slug,
                    title=article.title,
                    body=article.body,
                    category=article.category,
                    terms=frozenset(tokens),
                    sentences=sentences,
                    sentence_terms=tuple(frozenset(tokenize(s)) for s in sentences),
                )
            )
            # BM25 divides by the average length: an empty document must still count.
            corpus.append(tokens or ["\x00"])
        self.by_id = {doc.article_id: doc for doc in self.docs}
        self.bm25: _BM25 | None = _BM25(corpus) if corpus else None
        # A word no article contains is as telling as the rarest one.
        self.unknown_idf = math.log(1 + (len(corpus) + 0.5) / 0.5)

    def idf(self, term: str) -> float:
        if self.bm25 is None:
            return self.unknown_idf
        value: float = self.bm25.idf.get(term, self.unknown_idf)
        return value

    def scores(self, terms: Sequence[str]) -> list[float]:
        if self.bm25 is None or not terms:
            return [0.0] * len(self.docs)
        return [float(s) for s in self.bm25.get_scores(list(terms))]


_lock = threading.Lock()
_index: _Index | None = None


RECHECK_SECONDS = 1.0
_checked_at = 0.0


def clear_cache() -> None:
    global _index
    with _lock:
        _index = None


@receiver([post_save, post_delete], sender=KnowledgeArticle)
def _article_changed(**kwargs: Any) -> None:
    clear_cache()


def _current_index() -> _Index:
    global _index, _checked_at
    now = time.monotonic()
    with _lock:
        # Edits in this process clear the cache at once (signals below); other processes
        # (the workers) notice within RECHECK_SECONDS, without a query on every search.
        if _index is not None and now - _checked_at < RECHECK_SECONDS:
            return _index
    published = KnowledgeArticle.objects.filter(is_published=True)
    # The key is read before the articles: a change racing with the build makes the next
    # search rebuild again, never keeps a stale index.
    stats = published.aggregate(n=Count("pk"), latest=Max("updated_at"))
    key: tuple[int, datetime | None] = (stats["n"], stats["latest"])
    with _lock:
        _checked_at = now
        if _index is not None and _index.key == key:
            return _index
    articles = list(
        published.only("id", "slug", "title", "body", "tags", "category").order_by("pk")
    )
    index = _Index(key, articles)
    with _lock:
        _index = index
    return index


def _query_terms(query: str) -> list[str]:
    # Each distinct word counts once: "return, return" is not twice the question. A
    # pasted essay is cut to its first words: scoring cost grows with the distinct terms.
    return list(dict.fromkeys(tokenize(query[:MAX_QUERY_CHARS])))[:MAX_QUERY_TERMS]


def _ranked_sentences(index: _Index, doc: _Doc, terms: Sequence[str]) -> list[tuple[float, int]]:
    """(overlap weight, position) for every sentence of ``doc``, best first."""
    wanted = set(terms)
    ranked = [
        (sum(index.idf(t) for t in wanted & sentence_terms), position)
        for position, sentence_terms in enumerate(doc.sentence_terms)
    ]
    ranked.sort(key=lambda item: (-item[0], item[1]))
    return ranked


def _snippet(index: _Index, doc: _Doc, terms: Sequence[str]) -> str:
    """The (at most two) sentences that share most words with the query, in article order."""
    ranked = _ranked_sentences(index, doc, terms)
    chosen = sorted(position for weight, position in ranked[:SNIPPET_SENTENCES] if weight > 0)
    if not chosen:
        chosen = [0] if doc.sentences else []
    text = " ".join(doc.sentences[position] for position in chosen)
    if len(text) > SNIPPET_CHARS:
        text = text[: SNIPPET_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return text


def _search(index: _Index, terms: Sequence[str], k: int) -> list[Hit]:
    scores = index.scores(terms)
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], index.docs[i].article_id))
    hits: list[Hit] = []
    for i in order[:k]:
        if scores[i] <= 0:
            break
        doc = index.docs[i]
        hits.append(
            Hit(
                article_id=doc.article_id,
                slug=doc.slug,
                title=doc.title,
                score=scores[i],
                snippet=_snippet(index, doc, terms),
            )
        )
    return hits


def search(query: str, k: int = 3) -> list[Hit]:
    """The ``k`` published articles that best match ``query``, best first (score > 0 only)."""
    terms = _query_terms(query)
    if not terms or k <= 0:
        return []
    return _search(_current_index(), terms, k)


# A message's topic, offline (``topic_for``): its best-matching category must score more
# than one common word does, and lead every other category by this share of its score.
TOPIC_MIN_SCORE = 3.0
TOPIC_MARGIN = 0.1


def topic_for(text: str, topics: Sequence[str]) -> str:
    """The topic of ``text`` from the knowledge base: the category (one of ``topics``) of
    the articles that match it best, or "" when none matches clearly. No model call;
    the index is the one ``search`` uses."""
    terms = _query_terms(text)
    if not terms or not topics:
        return ""
    index = _current_index()
    wanted = set(topics)
    best: dict[str, float] = {}
    for doc, score in zip(index.docs, index.scores(terms), strict=True):
        if doc.category in wanted and score > best.get(doc.category, 0.0):
            best[doc.category] = score
    ranked = sorted(best.items(), key=lambda item: -item[1])
    if not ranked or ranked[0][1] < TOPIC_MIN_SCORE:
        return ""
    if len(ranked) > 1 and (ranked[0][1] - ranked[1][1]) / ranked[0][1] < TOPIC_MARGIN:
        return ""
    return ranked[0][0]


def _coverage(index: _Index, doc: _Doc, terms: Sequence[str]) -> float:
    covered = 0.0
    total = 0.0
    for term in terms:
        weight = index.idf(term)
        if term in doc.terms:
            covered += weight
        elif any(c.isdigit() for c in term):
            continue  # an order number or a quantity says nothing about the topic
        elif term in CATALOGUE_TERMS:
            weight *= CATALOGUE_WEIGHT
        total += weight
    return covered / total if total > 0 else 0.0


def best_answer(query: str) -> Answer:
    """The best article for ``query`` and how confident we are that it answers it.

    Confidence, in [0, MAX_CONFIDENCE], is the product of three signals:

    - coverage: the idf-weighted share of the question's content words that the article
      contains. A word no article knows ("capital", "poem", "landlord") weighs as much as
      the rarest one, so an off-topic question cannot score by sharing a common word
      ("order", "return") with an article.
    - margin: how far the best article is ahead of the runner-up, (s1 - s2) / s1. When
      several articles match about equally the question is ambiguous.
    - strength: a BM25 score below STRONG_SCORE rests on a single common word.

    The constants are calibrated so that clear questions about an article land at 0.7 or
    above (SUPPORTDESK_ESCALATION_THRESHOLD) and off-topic ones below.
    """
    terms = _query_terms(query)
    if not terms:
        return Answer(hit=None, confidence=0.0, second_score=0.0, coverage=0.0)
    index = _current_index()
    hits = _search(index, terms, 2)
    if not hits:
        return Answer(hit=None, confidence=0.0, second_score=0.0, coverage=0.0)
    best = hits[0]
    second = hits[1].score if len(hits) > 1 else 0.0
    coverage = _coverage(index, index.by_id[best.article_id], terms)
    margin = (best.score - second) / best.score
    confidence = _confidence(coverage, margin, best.score)
    return Answer(hit=best, confidence=confidence, second_score=second, coverage=coverage)


def _confidence(coverage: float, margin: float, score: float) -> float:
    margin_factor = 1 - MARGIN_PENALTY * (1 - min(1.0, margin / CLEAR_MARGIN))
    strength_factor = min(1.0, score / STRONG_SCORE) ** 0.5
    value = coverage * margin_factor * strength_factor
    return round(max(0.0, min(MAX_CONFIDENCE, value)), 3)


def key_sentences(hit: Hit, query: str, *, limit: int = 4, minimum: int = 2) -> list[str]:
    """The sentences of ``hit``'s article that best answer ``query``, in article order.

    Sentences sharing words with the question come first; if fewer than ``minimum`` do,
    the article's opening sentences (its summary) fill the gap.
    """
    index = _index
    doc = index.by_id.get(hit.article_id) if index is not None else None
    if index is None or doc is None:
        index = _current_index()
        doc = index.by_id.get(hit.article_id)
        if doc is None:
            return []
    ranked = _ranked_sentences(index, doc, _query_terms(query))
    chosen = [position for weight, position in ranked if weight > 0][:limit]
    for position in range(len(doc.sentences)):
        if len(chosen) >= min(minimum, limit):
            break
        if position not in chosen:
            chosen.append(position)
    return [doc.sentences[position] for position in sorted(chosen)]
