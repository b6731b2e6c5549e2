"""Mood as valence/arousal in [-1, 1]: the word lexicon and the free-text query model.

The lexicon is hand-written (Russell circumplex placement: valence left-right,
arousal bottom-top), covering all four quadrants plus situations people ask for
("workout", "rainy day", "funeral"). Batch fits a ridge regression from
sentence embeddings of lexicon templates to (valence, arousal) and publishes it
with the lexicon's embedded centroids in the ``content`` artifact; the reader
answers a free-text query with :func:`text_mood`: the mean of the ridge and a
soft nearest-lexicon vote. Why both: the ridge generalises to compositional
phrases, the nearest entries handle idioms and are the explanation shown to the
user; held out, each fails on different queries and the mean rarely fails badly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

# fmt: off
LEXICON: dict[str, tuple[float, float]] = {
    # positive valence, high arousal
    "happy": (0.8, 0.5), "joyful": (0.85, 0.6), "excited": (0.7, 0.85), "energetic": (0.5, 0.85),
    "euphoric": (0.85, 0.9), "ecstatic": (0.85, 0.9), "cheerful": (0.8, 0.5), "upbeat": (0.7, 0.65),
    "party": (0.7, 0.85), "dance": (0.65, 0.8), "celebration": (0.8, 0.75),
    "triumphant": (0.75, 0.75), "victory": (0.8, 0.7), "workout": (0.35, 0.9),
    "running": (0.3, 0.8), "gym": (0.3, 0.85), "hype": (0.55, 0.95), "pumped": (0.55, 0.9),
    "adrenaline": (0.3, 0.95), "fun": (0.8, 0.6), "playful": (0.7, 0.5), "groovy": (0.65, 0.55),
    "funky": (0.6, 0.6), "summer": (0.7, 0.5), "sunshine": (0.8, 0.4), "road trip": (0.65, 0.55),
    "festival": (0.7, 0.8), "confident": (0.65, 0.5), "empowered": (0.7, 0.65),
    "motivated": (0.6, 0.7), "uplifting": (0.75, 0.55), "inspiring": (0.7, 0.45),
    "epic": (0.45, 0.8), "heroic": (0.55, 0.75), "anthem": (0.55, 0.75),
    "friday night": (0.65, 0.75), "good vibes": (0.8, 0.4), "feel good": (0.8, 0.45),
    "birthday": (0.8, 0.6), "wedding": (0.8, 0.4), "catchy": (0.65, 0.5), "club": (0.55, 0.85),
    # positive valence, low arousal
    "calm": (0.45, -0.7), "chill": (0.5, -0.5), "relaxed": (0.55, -0.65), "peaceful": (0.6, -0.7),
    "serene": (0.6, -0.75), "tranquil": (0.55, -0.75), "mellow": (0.4, -0.5),
    "soothing": (0.5, -0.65), "gentle": (0.5, -0.55), "tender": (0.6, -0.35),
    "romantic": (0.65, -0.1), "love": (0.8, 0.1), "in love": (0.85, 0.2), "cozy": (0.65, -0.55),
    "warm": (0.6, -0.3), "content": (0.6, -0.4), "dreamy": (0.35, -0.55), "lullaby": (0.4, -0.85),
    "sleep": (0.2, -0.95), "bedtime": (0.25, -0.85), "meditation": (0.4, -0.85),
    "meditative": (0.4, -0.8), "yoga": (0.45, -0.6), "spa": (0.5, -0.75), "focus": (0.15, -0.35),
    "study": (0.1, -0.4), "reading": (0.3, -0.55), "lazy": (0.2, -0.75),
    "sunday morning": (0.5, -0.6), "coffee shop": (0.4, -0.35), "acoustic": (0.3, -0.3),
    "lo-fi": (0.3, -0.55), "ambient": (0.2, -0.7), "atmospheric": (0.2, -0.55),
    "sunset": (0.55, -0.4), "beach": (0.65, -0.1), "hopeful": (0.6, 0.1), "grateful": (0.75, -0.1),
    "nostalgic": (-0.1, -0.3), "sentimental": (0.1, -0.3), "bittersweet": (-0.1, -0.25),
    "wistful": (-0.2, -0.35), "easygoing": (0.5, -0.4), "laid back": (0.5, -0.5),
    "comforting": (0.6, -0.5), "healing": (0.45, -0.4), "smooth": (0.5, -0.3),
    "soulful": (0.3, -0.2), "sensual": (0.55, 0.0),
    # negative valence, low arousal
    "sad": (-0.75, -0.4), "melancholy": (-0.55, -0.4), "depressed": (-0.85, -0.6),
    "lonely": (-0.7, -0.45), "heartbreak": (-0.85, -0.1), "heartbroken": (-0.85, -0.15),
    "grief": (-0.85, -0.35), "mourning": (-0.8, -0.45), "crying": (-0.75, 0.1),
    "tears": (-0.7, -0.1), "gloomy": (-0.6, -0.45), "somber": (-0.55, -0.55),
    "rainy": (-0.2, -0.5), "rain": (-0.15, -0.45), "grey sky": (-0.35, -0.5),
    "winter": (-0.1, -0.45), "tired": (-0.35, -0.8), "exhausted": (-0.45, -0.8),
    "bored": (-0.45, -0.65), "empty": (-0.6, -0.6), "hopeless": (-0.85, -0.5),
    "regret": (-0.65, -0.2), "longing": (-0.35, -0.15), "missing someone": (-0.55, -0.25),
    "breakup": (-0.75, 0.05), "alone": (-0.5, -0.45), "blue": (-0.55, -0.35),
    "down": (-0.6, -0.45), "moody": (-0.35, -0.1), "dark": (-0.5, 0.1), "haunting": (-0.35, 0.0),
    "eerie": (-0.4, 0.2), "funeral": (-0.85, -0.5), "goodbye": (-0.6, -0.2),
    "late night": (-0.05, -0.45), "insomnia": (-0.45, -0.1), "slow": (-0.1, -0.6),
    "drone": (-0.1, -0.7),
    # negative valence, high arousal
    "angry": (-0.7, 0.8), "rage": (-0.8, 0.95), "furious": (-0.8, 0.9),
    "aggressive": (-0.45, 0.9), "intense": (-0.1, 0.85), "tense": (-0.45, 0.55),
    "anxious": (-0.6, 0.6), "stressed": (-0.65, 0.65), "nervous": (-0.5, 0.55),
    "scary": (-0.65, 0.7), "horror": (-0.75, 0.75), "panic": (-0.75, 0.85),
    "chaotic": (-0.3, 0.85), "frustrated": (-0.65, 0.55), "rebellious": (-0.15, 0.75),
    "heavy metal": (-0.2, 0.9), "heavy": (-0.25, 0.8), "mosh pit": (-0.1, 0.95),
    "revenge": (-0.6, 0.7), "jealous": (-0.6, 0.45), "betrayed": (-0.8, 0.4),
    "battle": (-0.2, 0.85), "war": (-0.7, 0.8), "villain": (-0.5, 0.6), "suspense": (-0.3, 0.6),
    "road rage": (-0.7, 0.8), "traffic jam": (-0.5, 0.4), "loud": (0.0, 0.85),
    # neutral or situational
    "commute": (0.0, 0.1), "cooking": (0.45, 0.1), "dinner party": (0.6, 0.2),
    "cleaning": (0.2, 0.4), "driving": (0.3, 0.3), "night drive": (0.2, 0.0),
    "background": (0.1, -0.5), "work": (0.0, 0.0), "mysterious": (-0.1, 0.15),
    "cinematic": (0.2, 0.4), "retro": (0.4, 0.2), "classical": (0.3, -0.35),
    "jazz club": (0.45, -0.1), "rainy day": (-0.2, -0.5), "snow": (0.3, -0.5),
    "spring": (0.65, 0.2), "autumn": (0.05, -0.35), "hangover": (-0.45, -0.55),
    "pregame": (0.6, 0.8), "after party": (0.4, 0.2), "falling asleep": (0.2, -0.9),
}
# fmt: on
"""Mood words and phrases -> (valence, arousal), hand-assigned."""

TEMPLATES: tuple[str, ...] = (
    "{w}",
    "{w} music",
    "{w} songs",
    "something {w}",
    "{w} vibes",
    "a playlist for {w}",
    "music for when i feel {w}",
    "{w} mood",
    "put on something for {w}",
    "tonight is all about {w}",
    "i need songs that feel {w}",
    "today feels {w}",
    "soundtrack for a {w} afternoon",
    "play me something {w} right now",
)
"""Phrasings the text-to-mood ridge is trained on (short tags and query-like sentences)."""


def tag_mood(tags: Iterable[str]) -> tuple[float, float] | None:
    """Mean (valence, arousal) of the tags found in the lexicon, or None."""
    known = [LEXICON[t.strip().lower()] for t in tags if t.strip().lower() in LEXICON]
    if not known:
        return None
    v = sum(k[0] for k in known) / len(known)
    a = sum(k[1] for k in known) / len(known)
    return (v, a)


def text_mood(
    query: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray,
    lexicon_vectors: np.ndarray,
    lexicon_va: np.ndarray,
    *,
    k: int = 5,
    temperature: float = 0.05,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(valence, arousal) per query embedding, and the nearest lexicon rows with similarities.

    ``query`` is (n, 384) unit-length; ``weights``/``bias`` the published ridge;
    ``lexicon_vectors`` (m, 384) the unit-length lexicon centroids and
    ``lexicon_va`` (m, 2) their values. Returns ``(va (n, 2), nearest (n, k),
    similarity (n, k))``.
    """
    q = np.atleast_2d(np.asarray(query, dtype=np.float32))
    ridge = q @ weights.astype(np.float32) + bias.astype(np.float32)
    sims = q @ lexicon_vectors.astype(np.float32).T
    k = max(1, min(k, sims.shape[1]))
    nearest = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(sims, nearest, axis=1)
    w = np.exp((top - top[:, :1]) / temperature)
    knn = (w[..., None] * lexicon_va.astype(np.float32)[nearest]).sum(axis=1) / w.sum(
        axis=1, keepdims=True
    )
    va = np.clip((ridge + knn) / 2.0, -1.0, 1.0).astype(np.float32)
    return va, nearest, top.astype(np.float32)


def lexicon_table(words: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """The lexicon as (words, (m, 2) float32 values), in a fixed order."""
    order = list(words) if words is not None else list(LEXICON)
    return order, np.array([LEXICON[w] for w in order], dtype=np.float32).reshape(-1, 2)
