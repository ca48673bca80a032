"""Base64Bench dataset generator: 34 types, counts, length ranges, reproducibility, JSONL."""

from __future__ import annotations

import base64
import json
import re

import pytest

from phasewatch.errors import ConfigError
from phasewatch.evals.dataset import read_jsonl, records, write_jsonl
from phasewatch.evals.texttypes import TYPES, generate

N = 50


@pytest.fixture(scope="module")
def texts() -> dict[str, list[str]]:
    return {name: generate(name, N, seed=0) for name in TYPES}


def test_there_are_34_types_with_50_texts_each_in_their_length_range(texts):
    assert len(TYPES) == 34
    for name, xs in texts.items():
        t = TYPES[name]
        assert len(xs) == N, name
        lengths = [len(x) for x in xs]
        assert t.min_len <= min(lengths) and max(lengths) <= t.max_len, (name, lengths)
        assert all(x.strip() for x in xs), name  # the score strips: never blank


def test_published_formats_and_sizes(texts):
    uuid = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    assert all(uuid.match(x) for x in texts["uuid"])
    assert all(re.fullmatch(r"[0-9a-f]{32}", x) for x in texts["hex_32"])
    assert all(re.fullmatch(r"[0-9a-f]{64}", x) for x in texts["hex_64"])
    for name, (lo, hi) in {
        "blob_128": (128, 128),
        "blob_medium": (300, 400),
        "blob_800": (760, 840),
        "blob_3200": (3000, 3400),
    }.items():
        for x in texts[name]:
            assert lo <= len(x) <= hi
            base64.b64decode(x, validate=True)  # random base64 blobs are valid base64
    for x in texts["private_key"]:
        lines = x.split("\n")
        assert 25 <= len(lines) <= 27
        assert (
            lines[0] == "-----BEGIN PRIVATE KEY-----" and lines[-1] == "-----END PRIVATE KEY-----"
        )
        assert all(len(line) == 64 for line in lines[1:-2]) and 0 < len(lines[-2]) <= 64
    assert all(len(x) == 1 and not x.isspace() for x in texts["single_char"])
    assert all(re.search(r"\S\s+\S", x) for x in texts["whitespace"])
    assert all(any(ord(c) > 0xFFFF or 0x2600 <= ord(c) < 0x2800 for c in x) for x in texts["emoji"])
    assert len(texts["paragraph"][0].split(". ")) >= 4
    assert all(x.count(".") == 2 for x in texts["jwt"])
    assert all(isinstance(json.loads(x), dict) for x in texts["agent_json"] + texts["json_object"])
    assert all(x.startswith("sk-") for x in texts["api_key"])


def test_generation_is_seeded_and_prefix_stable():
    assert generate("password", 5, seed=3) == generate("password", 5, seed=3)
    assert generate("password", 5, seed=3) != generate("password", 5, seed=4)
    assert generate("uuid", 10, seed=1)[:4] == generate("uuid", 4, seed=1)  # text i fixed


def test_records_use_every_text_for_encode_and_decode_in_a_balanced_order():
    recs = records(n_per_type=3, seed=0)
    assert len(recs) == 34 * 3 * 2
    assert len({r["id"] for r in recs}) == len(recs)
    first = recs[: 34 * 2]
    assert {(r["type"], r["direction"]) for r in first} == {
        (t, d) for t in TYPES for d in ("encode", "decode")
    }
    for enc, dec in zip(recs[::2], recs[1::2]):
        assert (enc["direction"], dec["direction"]) == ("encode", "decode")
        assert enc["text"] == dec["text"] and enc["length"] == len(enc["text"])
    assert {r["direction"] for r in records(2, 0, "uuid,emoji", "decode")} == {"decode"}


def test_jsonl_round_trip_and_the_original_format(tmp_path):
    recs = records(n_per_type=2, seed=5, types=["emoji", "whitespace"])
    path = write_jsonl(tmp_path / "d.jsonl", recs)
    assert read_jsonl(path) == recs  # emoji and whitespace survive
    orig = tmp_path / "orig.jsonl"
    orig.write_text('{"text": "Hello", "type": "word"}\n{"text": "x y"}\n')
    got = read_jsonl(orig)
    assert [(r["text"], r["direction"]) for r in got] == [
        ("Hello", "encode"),
        ("Hello", "decode"),
        ("x y", "encode"),
        ("x y", "decode"),
    ]
    assert len({r["id"] for r in got}) == 4


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"n_per_type": 0}, "n_per_type=0 is invalid"),
        ({"types": "uuid,nope"}, "types='uuid,nope' is invalid; allowed: uuid, hex_32"),
        ({"direction": "sideways"}, "direction='sideways' is invalid; allowed: both, encode"),
        ({"seed": -1}, "seed=-1 is invalid"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        records(**kwargs)


def test_bad_jsonl_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "x"}\n')
    with pytest.raises(ConfigError, match="line 1 has no text"):
        read_jsonl(bad)
    with pytest.raises(ConfigError, match="dataset="):
        read_jsonl(tmp_path / "missing.jsonl")
