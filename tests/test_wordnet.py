"""The synonym-pair builder on a hand-written WordNet fixture (tests/fixtures/wordnet/).

Every count below is worked out by hand from the fixture's data.* and index.* lines:

synset pairs (22 distinct word pairs)
    adj  big/large, little/small, little/wee, small/wee, gray/grey, big/pregnant, fast/quick  (7)
    noun Earth/earth, 3 × Jesus/Christ/Savior, ice_cream/icecream, t-shirt/tee,
         fo'c'sle/forecastle, child/kid (twice: 15 and 19), child/youngster, kid/youngster  (10)
    verb go/went, begin/beginning, speak/talk, appear/seem  (4)
    adv  fast/quickly  (1)
single_word                −2 (ice_cream, t-shirt)                       → 20
alphabetic                 −1 (fo'c'sle)                                 → 19
distinct_lowercase         −1 (Earth/earth)                              → 18
common_word                −3 (Jesus, Christ, Savior are capitalised)   → 15
frequent_sense             −5 (wee and youngster untagged; big's pregnant sense untagged:
                               little/wee, small/wee, child/youngster, kid/youngster, big/pregnant) → 10
not_morphological_variant  −3 (gray/grey edit distance 1; begin/beginning prefix;
                               go/went through verb.exc)                  → 7
single_token               −2 (" appear" and " quickly" are not tokens) → 5
"""

from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from induction_heads import wordnet as wn

FIXTURE = Path(__file__).parent / "fixtures" / "wordnet"
SINGLE_TOKEN_WORDS = ["big", "large", "little", "small", "child", "kid", "speak", "talk",
                      "seem", "fast", "quick"]  # fmt: skip


def hand_tokenizer(words: list[str]) -> Tokenizer:
    """Byte-level BPE whose only merges spell ``Ġword`` left to right for each of ``words``, so
    exactly those words (with a leading space) are single tokens; id 0 is BOS."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {"<|BOS|>": 0}
    for ch in alphabet:
        vocab.setdefault(ch, len(vocab))
    merges = []
    for word in words:
        piece = "Ġ"
        for ch in word:
            if (piece, ch) not in merges:
                merges.append((piece, ch))
            piece += ch
            vocab.setdefault(piece, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


@pytest.fixture(scope="module")
def candidates():
    return wn.build_candidates(FIXTURE)


def keys(pairs):
    return [p.key for p in pairs]


def test_hand_tokenizer_makes_exactly_the_listed_words_single_tokens():
    tok = hand_tokenizer(SINGLE_TOKEN_WORDS)
    assert wn.single_token_id(tok, " big") is not None
    assert wn.single_token_id(tok, " appear") is None
    assert wn.single_token_id(tok, "big") is None  # the in-text form needs the space


def test_parse_data_line_strips_markers_and_maps_satellites():
    s = wn.parse_data_line("00000002 00 s 03 little(a) 0 small 0 wee 0 000 | limited in size\n")
    assert s == wn.Synset(offset="00000002", pos="a", words=("little", "small", "wee"))


def test_sense_ranks_from_index():
    senses = wn.read_sense_ranks(FIXTURE)
    assert senses[("big", "a", "00000001")] == wn.SenseInfo(rank=0, tagged=True)
    assert senses[("big", "a", "00000004")] == wn.SenseInfo(rank=1, tagged=False)
    assert senses[("quick", "a", "00000005")] == wn.SenseInfo(rank=1, tagged=True)
    assert senses[("fast", "a", "00000005")].rank == 0  # index line with a pointer symbol


def test_counts_after_each_filter(candidates):
    _, counts = candidates
    assert list(counts) == list(wn.CANDIDATE_FILTERS)
    assert counts == {
        "synset_pairs": 22,
        "single_word": 20,
        "alphabetic": 19,
        "distinct_lowercase": 18,
        "common_word": 15,
        "frequent_sense": 10,
        "not_morphological_variant": 7,
    }


def test_surviving_candidates_sorted_and_deduplicated(candidates):
    pairs, _ = candidates
    assert keys(pairs) == [
        ("appear", "seem"), ("big", "large"), ("child", "kid"), ("fast", "quick"),
        ("fast", "quickly"), ("little", "small"), ("speak", "talk"),
    ]  # fmt: skip
    child_kid = pairs[2]
    assert (child_kid.synset_offset, child_kid.sense_rank_a, child_kid.sense_rank_b) == ("00000015", 0, 0)
    assert {p.pos for p in pairs} == {"a", "n", "v", "r"}


def test_max_sense_rank_drops_second_senses():
    _, counts = wn.build_candidates(FIXTURE, max_sense_rank=1)
    assert counts["frequent_sense"] == 9  # fast/quick is quick's second sense


def test_single_token_filter_fills_token_ids(candidates):
    tok = hand_tokenizer(SINGLE_TOKEN_WORDS)
    pairs = wn.single_token_pairs(candidates[0], tok)
    assert keys(pairs) == [("big", "large"), ("child", "kid"), ("fast", "quick"),
                           ("little", "small"), ("speak", "talk")]  # fmt: skip
    for p in pairs:
        assert tok.decode([p.token_a]) == " " + p.word_a
        assert tok.decode([p.token_b]) == " " + p.word_b


def word_level_tokenizer(words):
    """A whitespace-split tokenizer (no leading-space tokens) with an unknown token, as BERT-style
    vocabularies have: every word outside ``words`` encodes to the single token [UNK]."""
    vocab = {w: i for i, w in enumerate(["[UNK]", "[BOS]", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(["[BOS]"])
    return tok


def test_single_token_filter_rejects_the_unknown_token(candidates):
    tok = word_level_tokenizer(["big", "large", "little", "child", "kid"])
    assert wn.single_token_id(tok, "small") == tok.token_to_id("[UNK]")  # one token, but unknown
    pairs = wn.single_token_pairs(candidates[0], tok)
    # "small" (of little/small) is unknown: that pair is out; the in-text form has no space here
    assert keys(pairs) == [("big", "large"), ("child", "kid")]
    assert all(tok.decode([p.token_a]) == p.word_a for p in pairs)


def test_single_token_filter_needs_an_exact_round_trip(candidates):
    tok = hand_tokenizer(SINGLE_TOKEN_WORDS)
    assert wn.single_token_pairs(candidates[0], tok, prefix="") == []  # "big" alone is not one token
    lowered = word_level_tokenizer(["big", "large"])
    from tokenizers import normalizers

    lowered.normalizer = normalizers.Lowercase()  # "Big" would encode as "big": not its own token
    assert wn.word_token_id(lowered, "Big", "", wn.unusable_ids(lowered)) is None
    assert wn.word_token_id(lowered, "big", "", wn.unusable_ids(lowered)) == lowered.token_to_id("big")


@pytest.mark.parametrize(
    "a, b, expected",
    [("paid", "paying", True), ("go", "went", True), ("gray", "grey", True),
     ("child", "children", True), ("begin", "beginning", True), ("quick", "quickly", True),
     ("big", "large", False), ("speak", "talk", False), ("fast", "quickly", False)],
)  # fmt: skip
def test_morphological_variants(a, b, expected):
    exceptions = {"went": {"go"}, "paid": {"pay"}}
    assert wn.morphological_variants(a, b, exceptions) is expected


def test_edit_distance():
    assert wn.edit_distance("kitten", "sitting") == 3
    assert wn.edit_distance("", "abc") == 3
    assert wn.edit_distance("same", "same") == 0


def test_tsv_round_trip(tmp_path, candidates):
    tok = hand_tokenizer(SINGLE_TOKEN_WORDS)
    for pairs in (candidates[0], wn.single_token_pairs(candidates[0], tok)):
        wn.write_pairs(pairs, tmp_path / "p.tsv")
        assert wn.read_pairs(tmp_path / "p.tsv") == pairs


def test_read_pairs_rejects_other_tables(tmp_path):
    (tmp_path / "x.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="missing columns"):
        wn.read_pairs(tmp_path / "x.tsv")


def test_missing_wordnet_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="data.noun"):
        wn.find_wordnet_dir(tmp_path)


def test_pipeline_stages_write_tables_and_chained_counts(tmp_path):
    hand_tokenizer(SINGLE_TOKEN_WORDS).save(str(tmp_path / "tok.json"))
    counts1 = wn.build_candidate_table(FIXTURE, tmp_path / "syn.tsv", tmp_path / "syn.json")
    counts2 = wn.build_model_pairs(
        tmp_path / "syn.tsv", tmp_path / "tok.json", tmp_path / "m.tsv", tmp_path / "m.json",
        tmp_path / "syn.json",
    )  # fmt: skip
    assert len(wn.read_pairs(tmp_path / "syn.tsv")) == counts1["not_morphological_variant"] == 7
    assert list(counts2) == [*wn.CANDIDATE_FILTERS, wn.TOKENIZER_FILTER]
    assert counts2["single_token"] == len(wn.read_pairs(tmp_path / "m.tsv")) == 5
    assert wn.read_counts(tmp_path / "m.json") == counts2
