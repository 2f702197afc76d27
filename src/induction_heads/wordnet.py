"""Synonym pairs from WordNet 3.0, read straight from its database files (no nltk).

WordNet comes from Debian's ``wordnet-base`` package (``apt-get download`` + ``dpkg -x``; files in
``usr/share/wordnet/``). Two files per part of speech are read:

* ``data.<pos>``: one synset per line,
  ``offset lex_filenum ss_type w_cnt word lex_id [word lex_id …] p_cnt [ptr …] [frames] | gloss``
  (``w_cnt`` two hex digits, adjectives may carry a marker such as ``big(p)``);
* ``index.<pos>``: one lemma per line,
  ``lemma pos synset_cnt p_cnt [ptr_symbol …] sense_cnt tagsense_cnt synset_offset …``, whose
  offsets are in sense-number order (most frequent in the SemCor tagged corpus first) and whose
  first ``tagsense_cnt`` senses have a tag count above zero.

The pair table is built in two stages, so the pipeline makes the tokenizer-independent part once:

1. :func:`candidate_pairs` — every unordered pair of words that share a synset, passed through the
   filters of :data:`CANDIDATE_FILTERS` (counts after each filter are kept);
2. :func:`single_token_pairs` — the candidates whose two words are each one token of a model's
   tokenizer in their in-text form (a leading space: ``" big"``).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from tokenizers import Tokenizer

from .corpus import download_debian_package, extract_deb
from .tokenizer import in_text_prefix, single_token_id, unusable_ids, word_token_id

WORDNET_PACKAGE = "wordnet-base"
POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
SS_TYPE_TO_POS = {"n": "n", "v": "v", "a": "a", "s": "a", "r": "r"}  # satellites are adjectives
_MARKER = re.compile(r"\((a|p|ip)\)$")  # adjective syntactic markers: big(p)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Synset:
    offset: str  # eight digits, as in the file (unique within a part of speech)
    pos: str  # n, v, a (satellites included), r
    words: tuple[str, ...]  # lemmas as written, markers removed, underscores kept


def find_wordnet_dir(root: str | Path) -> Path:
    """The folder holding ``data.noun`` etc.: ``root`` itself or ``root/usr/share/wordnet``."""
    root = Path(root)
    for cand in (root, root / "usr/share/wordnet"):
        if (cand / "data.noun").is_file():
            return cand
    raise FileNotFoundError(
        f"no WordNet database (data.noun) in {root} or {root / 'usr/share/wordnet'}; expected an "
        f"unpacked '{WORDNET_PACKAGE}' .deb (dpkg -x) or a folder with data.* and index.* files"
    )


def fetch_wordnet(deb_dir: str | Path, unpack_dir: str | Path) -> Path:
    """Download (or reuse) Debian's ``wordnet-base`` .deb and unpack it; returns the database folder."""
    deb = download_debian_package(WORDNET_PACKAGE, Path(deb_dir))
    return find_wordnet_dir(extract_deb(deb, Path(unpack_dir)))


def _data_lines(path: Path) -> Iterator[str]:
    """Synset lines of a ``data.*`` file (the licence header lines start with two spaces)."""
    with open(path, encoding="latin-1") as fh:
        for line in fh:
            if line.strip() and not line.startswith("  "):
                yield line


def parse_data_line(line: str) -> Synset:
    """One ``data.*`` line → :class:`Synset` (only the offset, type and words are kept)."""
    fields_ = line.split(" | ", 1)[0].split()
    offset, ss_type, w_cnt = fields_[0], fields_[2], int(fields_[3], 16)
    words = tuple(_MARKER.sub("", fields_[4 + 2 * i]) for i in range(w_cnt))
    return Synset(offset=offset, pos=SS_TYPE_TO_POS[ss_type], words=words)


def read_synsets(wordnet_dir: str | Path) -> list[Synset]:
    """Every synset of the four parts of speech, in file order (n, v, a, r)."""
    wn = find_wordnet_dir(wordnet_dir)
    return [parse_data_line(line) for pos in POS_FILES.values() for line in _data_lines(wn / f"data.{pos}")]


@dataclass(frozen=True)
class SenseInfo:
    rank: int  # 0-based sense number of the lemma (0 = its most frequent sense)
    tagged: bool  # tag count > 0 in SemCor (the sense is among the first tagsense_cnt)


def read_sense_ranks(wordnet_dir: str | Path) -> dict[tuple[str, str, str], SenseInfo]:
    """``(lemma lowercased, pos, offset) → SenseInfo`` from the ``index.*`` files."""
    wn = find_wordnet_dir(wordnet_dir)
    out: dict[tuple[str, str, str], SenseInfo] = {}
    for pos, name in POS_FILES.items():
        for line in _data_lines(wn / f"index.{name}"):
            f = line.split()
            lemma, synset_cnt, p_cnt = f[0], int(f[2]), int(f[3])
            tagsense_cnt = int(f[5 + p_cnt])
            offsets = f[6 + p_cnt : 6 + p_cnt + synset_cnt]
            for rank, offset in enumerate(offsets):
                out[(lemma.lower(), pos, offset)] = SenseInfo(rank=rank, tagged=rank < tagsense_cnt)
    return out


def read_exceptions(wordnet_dir: str | Path) -> dict[str, set[str]]:
    """Irregular inflections from the ``*.exc`` files: ``inflected form → base forms`` (paid → pay)."""
    wn = find_wordnet_dir(wordnet_dir)
    out: dict[str, set[str]] = {}
    for name in POS_FILES.values():
        path = wn / f"{name}.exc"
        if not path.is_file():
            continue
        for line in _data_lines(path):
            form, *bases = line.split()
            out.setdefault(form.lower(), set()).update(b.lower() for b in bases)
    return out


# --------------------------------------------------------------------------- morphology

# WordNet's "morphy" detachment rules (all parts of speech together), plus derivational endings
# that make the same word in another form (quick/quickly, kind/kindness).
_SUFFIXES = (
    ("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
    ("men", "man"), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""),
    ("ing", "e"), ("ing", ""), ("er", ""), ("est", ""), ("er", "e"), ("est", "e"),
    ("ly", ""), ("ily", "y"), ("ness", ""), ("iness", "y"), ("ment", ""), ("ful", ""),
)  # fmt: skip


def base_forms(word: str, exceptions: dict[str, set[str]] | None = None) -> set[str]:
    """The word and every base form that detaching a suffix or an exception list gives."""
    w = word.lower()
    out = {w} | (exceptions or {}).get(w, set())
    for suffix, ending in _SUFFIXES:
        if w.endswith(suffix) and len(w) - len(suffix) >= 2:
            out.add(w[: len(w) - len(suffix)] + ending)
    return out


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insert, delete, substitute all cost 1)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def common_prefix_len(a: str, b: str) -> int:
    n = 0
    for ca, cb in zip(a, b):
        if ca != cb:
            break
        n += 1
    return n


def morphological_variants(
    a: str,
    b: str,
    exceptions: dict[str, set[str]] | None = None,
    *,
    stem_len: int = 4,
    max_edit: int = 2,
) -> bool:
    """Whether ``a`` and ``b`` look like forms of one word rather than two words.

    True when one is a prefix of the other (child/children), they share a stem of ``stem_len``
    letters (begin/beginning, colour/colourise), they are within ``max_edit`` edits (gray/grey),
    or their base forms meet (paid/paying: both give "pay").
    """
    a, b = a.lower(), b.lower()
    if a.startswith(b) or b.startswith(a):
        return True
    if common_prefix_len(a, b) >= stem_len or edit_distance(a, b) <= max_edit:
        return True
    return bool(base_forms(a, exceptions) & base_forms(b, exceptions))


# --------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class SynonymPair:
    """Two words of one synset; ``word_a < word_b``. Token ids are filled in by stage 2."""

    word_a: str
    word_b: str
    pos: str
    synset_offset: str
    sense_rank_a: int  # 0-based sense number of this synset for word_a (-1: not in the index)
    sense_rank_b: int
    token_a: int | None = None
    token_b: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.word_a, self.word_b)

    def preference(self) -> tuple:
        """Which synset stands for a word pair found in several: most frequent senses first."""
        return (max(self.sense_rank_a, self.sense_rank_b), self.sense_rank_a + self.sense_rank_b,
                self.pos, self.synset_offset)  # fmt: skip


CANDIDATE_FILTERS = (
    "synset_pairs",  # every unordered pair of different lemma strings within one synset
    "single_word",  # no multiword (underscore) or hyphenated lemma
    "alphabetic",  # letters a-z / A-Z only (no digits, apostrophes, dots)
    "distinct_lowercase",  # not equal after lowercasing (Earth/earth)
    "common_word",  # both lowercase lemmas: no proper nouns (Jesus/Christ)
    "frequent_sense",  # this synset is a tagged sense (tag count > 0) among each word's first senses
    "not_morphological_variant",  # see morphological_variants
)
TOKENIZER_FILTER = "single_token"  # both " word" are one token each (stage 2)


def _all_pairs(synsets: Iterable[Synset], senses: dict) -> list[SynonymPair]:
    out = []
    for s in synsets:
        words = sorted(set(s.words))
        for i, a in enumerate(words):
            for b in words[i + 1 :]:
                ra = senses.get((a.lower(), s.pos, s.offset))
                rb = senses.get((b.lower(), s.pos, s.offset))
                out.append(SynonymPair(a, b, s.pos, s.offset, -1 if ra is None else ra.rank,
                                       -1 if rb is None else rb.rank))  # fmt: skip
    return out


def _dedupe(pairs: Iterable[SynonymPair]) -> list[SynonymPair]:
    """One entry per word pair (its preferred synset), sorted by word pair: deterministic."""
    best: dict[tuple[str, str], SynonymPair] = {}
    for p in pairs:
        if p.key not in best or p.preference() < best[p.key].preference():
            best[p.key] = p
    return [best[k] for k in sorted(best)]


def candidate_pairs(
    synsets: list[Synset],
    senses: dict[tuple[str, str, str], SenseInfo],
    exceptions: dict[str, set[str]] | None = None,
    *,
    max_sense_rank: int = 8,
    stem_len: int = 4,
    max_edit: int = 2,
) -> tuple[list[SynonymPair], dict[str, int]]:
    """Filter synset co-members into candidate synonym pairs.

    Returns the surviving pairs (one per word pair, sorted) and the number of distinct word pairs
    left after each filter of :data:`CANDIDATE_FILTERS`. A word pair found in several synsets
    survives a filter if any of its synsets does. ``frequent_sense`` keeps a synset when, for both
    words, it is a SemCor-tagged sense with sense number below ``max_sense_rank`` (0-based).
    """

    def tagged(word: str, p: SynonymPair) -> bool:
        info = senses.get((word.lower(), p.pos, p.synset_offset))
        return info is not None and info.tagged and info.rank < max_sense_rank

    tests = {
        "single_word": lambda p: not any(c in w for w in p.key for c in "_- "),
        "alphabetic": lambda p: all(w.isascii() and w.isalpha() for w in p.key),
        "distinct_lowercase": lambda p: p.word_a.lower() != p.word_b.lower(),
        "common_word": lambda p: all(w == w.lower() for w in p.key),
        "frequent_sense": lambda p: tagged(p.word_a, p) and tagged(p.word_b, p),
        "not_morphological_variant": lambda p: not morphological_variants(
            p.word_a, p.word_b, exceptions, stem_len=stem_len, max_edit=max_edit
        ),
    }
    pairs = _all_pairs(synsets, senses)
    counts = {"synset_pairs": len({p.key for p in pairs})}
    for name in CANDIDATE_FILTERS[1:]:
        pairs = [p for p in pairs if tests[name](p)]
        counts[name] = len({p.key for p in pairs})
    return _dedupe(pairs), counts


def single_token_pairs(
    pairs: list[SynonymPair], tok: Tokenizer, prefix: str | None = None
) -> list[SynonymPair]:
    """The pairs whose two words are each a single *ordinary* token of ``tok`` in their in-text
    form (``prefix + word``; by default the tokenizer's own, see :func:`tokenizer.in_text_prefix`)
    that decodes back to that text — never the unknown or a special token — with the token ids
    filled in; order kept."""
    prefix = in_text_prefix(tok) if prefix is None else prefix
    unusable = unusable_ids(tok)
    out = []
    for p in pairs:
        ta = word_token_id(tok, p.word_a, prefix, unusable)
        tb = word_token_id(tok, p.word_b, prefix, unusable)
        if ta is not None and tb is not None and ta != tb:
            out.append(replace(p, token_a=ta, token_b=tb))
    return out


# --------------------------------------------------------------------------- files

_COLUMNS = [f.name for f in fields(SynonymPair)]


def write_pairs(pairs: list[SynonymPair], path: str | Path) -> None:
    """TSV with a header (token columns empty for stage-1 candidates); written atomically."""
    from .metrics import atomic_write_text

    lines = ["\t".join(_COLUMNS)]
    for p in pairs:
        row = asdict(p)
        lines.append("\t".join("" if row[c] is None else str(row[c]) for c in _COLUMNS))
    atomic_write_text(Path(path), "\n".join(lines) + "\n")


def read_pairs(path: str | Path) -> list[SynonymPair]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        missing = set(_COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: not a synonym-pair table; missing columns {sorted(missing)}")
        out = []
        for row in reader:
            out.append(SynonymPair(
                word_a=row["word_a"], word_b=row["word_b"], pos=row["pos"],
                synset_offset=row["synset_offset"], sense_rank_a=int(row["sense_rank_a"]),
                sense_rank_b=int(row["sense_rank_b"]),
                token_a=int(row["token_a"]) if row["token_a"] else None,
                token_b=int(row["token_b"]) if row["token_b"] else None,
            ))  # fmt: skip
        return out


def build_candidates(wordnet_dir: str | Path, **kwargs) -> tuple[list[SynonymPair], dict[str, int]]:
    """Stage 1 from a WordNet folder: read the files and run :func:`candidate_pairs`."""
    return candidate_pairs(
        read_synsets(wordnet_dir), read_sense_ranks(wordnet_dir), read_exceptions(wordnet_dir), **kwargs
    )


# --------------------------------------------------------------------------- pipeline stages


def write_counts(counts: dict, path: str | Path, **extra) -> None:
    """The per-filter counts (in filter order) and what produced them, as JSON (atomically)."""
    import json

    from .metrics import atomic_write_text

    atomic_write_text(Path(path), json.dumps({"counts": counts, **extra}, indent=2) + "\n")


def read_counts(path: str | Path) -> dict[str, int]:
    import json

    return json.loads(Path(path).read_text())["counts"]


def build_candidate_table(
    wordnet_dir: str | Path, out: str | Path, counts_path: str | Path, **params
) -> dict[str, int]:
    """Stage 1 (once): ``synonyms.tsv`` and its per-filter counts."""
    pairs, counts = build_candidates(wordnet_dir, **params)
    write_pairs(pairs, out)
    write_counts(counts, counts_path, wordnet_dir=str(wordnet_dir), params=params)
    return counts


def build_model_pairs(
    candidates_path: str | Path,
    tokenizer_path: str | Path,
    out: str | Path,
    counts_path: str | Path,
    candidate_counts_path: str | Path | None = None,
) -> dict[str, int]:
    """Stage 2 (per model): the single-token subset for one tokenizer; the counts file continues
    the candidate counts (when given) with ``single_token``."""
    from .tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizer_path)
    candidates = read_pairs(candidates_path)
    pairs = single_token_pairs(candidates, tok)
    write_pairs(pairs, out)
    counts = dict(read_counts(candidate_counts_path)) if candidate_counts_path else {}
    counts.setdefault(CANDIDATE_FILTERS[-1], len(candidates))
    counts[TOKENIZER_FILTER] = len(pairs)
    write_counts(counts, counts_path, tokenizer=str(tokenizer_path), vocab_size=tok.get_vocab_size())
    return counts
