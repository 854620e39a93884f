"""Loading the few-shot library: schema validation with errors that name the bad example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecco_sdk.errors import ConfigurationError, FileFormatError, InputError
from ecco_sdk.explain.library import as_library, default_library_path, load_library, parse_library

FIXTURE = Path(__file__).parent / "explain_fixtures" / "examples.json"


def _good(**over):
    ex = {
        "id": "punct-commas-01",
        "category": "punctuation",
        "source": "hand",
        "tokens": ["I", " love", " apples", ",", " pears"],
        "activations": [0, 0, 0, 10, 0],
        "explanation": "commas separating items in a list",
    }
    ex.update(over)
    return ex


def _write(tmp_path: Path, examples, version=1) -> Path:
    path = tmp_path / "lib.json"
    path.write_text(json.dumps({"version": version, "examples": examples}))
    return path


def test_fixture_library_loads_in_file_order():
    lib = load_library(FIXTURE)
    assert len(lib) == 10
    assert lib.ids[0] == "punct-commas-01"
    ex = lib.get("numbers-years-01")
    assert ex.category == "numbers"
    assert ex.record.levels == list(ex.activations)
    assert lib.categories()["punctuation"] == 1


def test_content_hash_changes_when_an_example_is_edited():
    lib = parse_library({"version": 1, "examples": [_good()]})
    edited = parse_library({"version": 1, "examples": [_good(explanation="commas")]})
    same = parse_library({"version": 1, "examples": [_good()]})
    assert lib.examples[0].content_hash() != edited.examples[0].content_hash()
    assert lib.examples[0].content_hash() == same.examples[0].content_hash()


@pytest.mark.parametrize(
    ("bad", "needles"),
    [
        (_good(activations=[0, 0, 10]), ["#1", "punct-commas-01", "activations", "3 values", "5"]),
        (_good(activations=[0, 0, 0, 11, 0]), ["#1", "activations[3]", "0-10"]),
        (_good(activations=[0, 0, 0, 2.5, 0]), ["#1", "activations[3]", "integers"]),
        (_good(explanation=""), ["#1", "'explanation'"]),
        (_good(tokens=[]), ["#1", "'tokens'"]),
        (_good(id="bad id!"), ["#1", "'id'"]),
        ({"id": "x-1", "tokens": ["a"]}, ["#1", "x-1", "missing", "'category'", "'activations'"]),
    ],
)
def test_bad_example_errors_name_the_example_and_field(tmp_path, bad, needles):
    path = _write(tmp_path, [_good(id="ok-0"), bad])
    with pytest.raises(FileFormatError) as info:
        load_library(path)
    msg = str(info.value)
    assert str(path) in msg
    for needle in needles:
        assert needle in msg


def test_duplicate_ids_are_rejected(tmp_path):
    path = _write(tmp_path, [_good(), _good()])
    with pytest.raises(FileFormatError, match="used twice"):
        load_library(path)


def test_bad_json_reports_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"version": 1,\n "examples": [,]}')
    with pytest.raises(FileFormatError, match="line 2"):
        load_library(path)


def test_library_reads_are_bounded_and_text_only(tmp_path):
    with pytest.raises(FileFormatError, match="not a regular file"):
        load_library("/dev/zero")
    path = tmp_path / "surrogate.json"
    path.write_text('{"version": 1, "examples": [{"id": "a\\ud800"}]}')
    with pytest.raises(FileFormatError, match="lone surrogate"):
        load_library(path)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(FileFormatError, match="nests too deeply"):
        load_library(deep)


def test_unsupported_version_and_empty_library_are_rejected(tmp_path):
    with pytest.raises(FileFormatError, match="version"):
        load_library(_write(tmp_path, [_good()], version=2))
    with pytest.raises(FileFormatError, match="non-empty"):
        load_library(_write(tmp_path, []))


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_library(tmp_path / "nope.json")


def test_as_library_accepts_paths_libraries_and_example_lists():
    lib = load_library(FIXTURE)
    assert as_library(lib) is lib
    assert as_library(str(FIXTURE)).ids == lib.ids
    assert as_library(lib.examples[:2]).ids == lib.ids[:2]
    with pytest.raises(InputError):
        as_library([{"id": "not-an-example"}])


def test_builtin_library_loads_when_present():
    """The shipped library (written by another helper) must pass the same validation."""
    path = default_library_path()
    if not path.exists():
        with pytest.raises(ConfigurationError, match="missing"):
            load_library()
        return
    lib = load_library()
    assert len(lib) > 0
    assert all(len(ex.tokens) == len(ex.activations) for ex in lib)
