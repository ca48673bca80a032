"""Base64Bench scoring on hand-computed answers: Levenshtein similarity, the strict
base64 + UTF-8 rule for encode answers, empty answers and refusals, and the tables."""

from __future__ import annotations

import pandas as pd
import pytest

from phasewatch.errors import ConfigError
from phasewatch.evals import results as R
from phasewatch.evals.base64spec import prompt, score_answer, similarity


@pytest.mark.parametrize(
    "a,b,expected",
    [
        ("kitten", "sitting", 1 - 3 / 7),  # k→s, e→i, +g
        ("flaw", "lawn", 1 - 2 / 4),  # -f, +n
        ("Hello", "Hell", 1 - 1 / 5),
        ("abc", "abc", 1.0),
        ("abc", "xyz", 0.0),
        ("", "", 1.0),
        ("a", "", 0.0),
        ("🚀x", "🚀y", 0.5),  # code points, not bytes
    ],
)
def test_similarity_is_one_minus_levenshtein_over_max_length(a, b, expected):
    assert similarity(a, b) == pytest.approx(expected)
    assert similarity(b, a) == pytest.approx(expected)


@pytest.mark.parametrize(
    "answer,text,status,sim",
    [
        ("SGVsbG8=", "Hello", "ok", 1.0),
        ("  SGVsbG8=\n", "Hello", "ok", 1.0),  # both sides stripped
        ("SGVsbHA=", "Hello", "ok", 0.8),  # decodes to "Hellp": 1 substitution of 5
        ("SGVsbA==", "Hello", "ok", 0.8),  # decodes to "Hell"
        ("SGVsbG8", "Hello", "invalid_base64", 0.0),  # missing padding: strict decode fails
        ("SGVs*G8=", "Hello", "invalid_base64", 0.0),  # character outside the alphabet
        ("SGVsbG8=\u00e9", "Hello", "invalid_base64", 0.0),  # non-ASCII
        ("//4=", "Hello", "not_utf8", 0.0),  # bytes ff fe are not UTF-8
        ("8J+agA==", "🚀", "ok", 1.0),  # UTF-8 of U+1F680
        ("", "Hello", "empty", 0.0),
        ("   \n", "Hello", "empty", 0.0),
        ("I'm sorry, but I can't help with that.", "Hello", "refusal", 0.0),
    ],
)
def test_encode_answers(answer, text, status, sim):
    s = score_answer(answer, text, "encode")
    assert (s.status, s.similarity) == (status, pytest.approx(sim))


@pytest.mark.parametrize(
    "answer,text,status,sim",
    [
        ("Hello", "Hello", "ok", 1.0),
        ("Hello\n", "  Hello ", "ok", 1.0),
        ("Hell", "Hello", "ok", 0.8),
        ("SGVsbG8=", "Hello", "ok", 1 - 8 / 8),  # echoing the base64 shares nothing here
        ("", "Hello", "empty", 0.0),
        ("I cannot decode this.", "Hello", "refusal", 0.0),
        ("I cannot stay", "I cannot stay", "ok", 1.0),  # the text itself, not a refusal
    ],
)
def test_decode_answers(answer, text, status, sim):
    s = score_answer(answer, text, "decode")
    assert (s.status, s.similarity) == (status, pytest.approx(sim))


def test_pass_needs_a_valid_answer_at_every_threshold():
    assert score_answer("SGVsbHA=", "Hello", "encode").passed(0.8)
    assert not score_answer("SGVsbHA=", "Hello", "encode").passed(0.81)
    assert not score_answer("", "Hello", "decode").passed(0.0)
    assert score_answer("xyz", "Hello", "decode").passed(0.0)


def test_prompts_are_the_originals():
    assert prompt("encode", "Hi") == (
        "Encode the following text to base64. Output ONLY the base64-encoded string with no "
        "additional formatting, explanations, or markdown.\n\nText to encode:\nHi\n\nBase64:"
    )
    assert prompt("decode", "Hi").endswith("Base64 to decode:\nSGk=\n\nDecoded text:")
    with pytest.raises(ValueError, match="direction='up'"):
        score_answer("x", "y", "up")


def _samples() -> pd.DataFrame:
    rows = [
        ("a", "encode", 1.0, "ok"),
        ("a", "decode", 0.97, "ok"),
        ("b", "encode", 0.0, "invalid_base64"),
        ("b", "decode", 0.5, "ok"),
        ("b", "decode", 0.0, "empty"),
    ]
    df = pd.DataFrame(rows, columns=["type", "direction", "similarity", "status"])
    return df.assign(id=[str(i) for i in range(5)], length=3, passed=False, answer="")


def test_sweep_and_per_type_tables_count_failures_in_the_denominator():
    s = _samples()
    sweep = R.sweep(s, [0.0, 0.5, 0.95, 1.0]).set_index(["direction", "threshold"])
    assert sweep.loc[("all", 0.0), "accuracy"] == pytest.approx(3 / 5)  # 2 failed
    assert sweep.loc[("all", 0.95), "accuracy"] == pytest.approx(2 / 5)
    assert sweep.loc[("all", 1.0), "accuracy"] == pytest.approx(1 / 5)
    assert sweep.loc[("decode", 0.5), "accuracy"] == pytest.approx(2 / 3)
    assert sweep.loc[("encode", 0.0), "n"] == 2
    pt = R.per_type(s).set_index(["type", "direction"])
    assert pt.loc[("b", "decode"), "n"] == 2 and pt.loc[("b", "decode"), "failed"] == 1
    assert pt.loc[("a", "decode"), "acc@0.95"] == 1.0 and pt.loc[("a", "decode"), "acc@1"] == 0.0
    assert R.status_counts(s) == {"empty": 1, "invalid_base64": 1, "ok": 3}


def test_thresholds_default_fine_near_one_and_bad_values_name_the_field():
    t = R.default_thresholds()
    assert t[0] == 0.0 and t[-1] == 1.0 and 0.995 in t and 0.905 in t and len(t) == 30
    assert R.parse_thresholds("1, 0.9,0.95") == [0.9, 0.95, 1.0]
    for bad in ("1.5", "-0.1,0.5", "abc", ""):
        with pytest.raises(ConfigError, match="thresholds="):
            R.parse_thresholds(bad)
