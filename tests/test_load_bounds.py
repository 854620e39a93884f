"""`ecco_sdk.load` refuses hostile, damaged and inconsistent files quickly and without inflating them (issue 12)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from crafted_ecco import (
    bomb_file,
    deflate_bomb,
    header_claims_file,
    npy_header,
    raw_zip,
    read_parts,
    sample_run,
    variant,
    write_parts,
)

import ecco_sdk
from ecco_sdk.bounded_io import MAX_LOAD_BYTES
from ecco_sdk.errors import FileFormatError, InputError

GIB = 2**30


def refused(path: Path, match: str, **kw) -> tuple[float, int]:
    """Assert load(path) raises FileFormatError matching `match`; return (seconds, peak traced bytes)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(FileFormatError, match=match):
            ecco_sdk.load(path, **kw)
        return time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_saved_run_round_trips_through_the_checked_loader(tmp_path):
    run = sample_run()
    back = ecco_sdk.load(run.save(tmp_path / "run.ecco"))
    for name in ("token_ids", "candidate_ids", "candidate_probs", "hidden_states", "activations"):
        np.testing.assert_array_equal(getattr(back, name), getattr(run, name))
    assert back.tokens == run.tokens and back.candidate_tokens == run.candidate_tokens
    a, b = run.attributions["saliency"], back.attributions["saliency"]
    np.testing.assert_array_equal(a.raw, b.raw)
    np.testing.assert_array_equal(a.target_positions, b.target_positions)
    assert back.generated_positions == [3, 4] and back.hidden_states.flags.writeable


def test_the_deflate_bomb_builder_makes_a_real_bomb():
    """The crafted stream really inflates to what it claims (checked on 64 MiB, streamed in 1 MiB pieces)."""
    header = npy_header((2**24,), "<f4")
    stream, crc = deflate_bomb(header, 2**26)
    assert len(stream) < 2**26 // 500
    d, total, got_crc = zlib.decompressobj(-15), 0, 0
    data = stream
    while data or not d.eof:
        piece = d.decompress(data, 2**20)
        data = d.unconsumed_tail
        total += len(piece)
        got_crc = zlib.crc32(piece, got_crc)
        if not piece and not data:
            break
    assert total == len(header) + 2**26 and got_crc == crc


def test_a_2_gib_bomb_is_refused_in_milliseconds_without_inflating(tmp_path):
    path = bomb_file(tmp_path / "bomb.ecco", 2 * GIB)
    assert path.stat().st_size < 3 * 2**20  # a 2 MB file
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds, peak = refused(path, r"token_ids\.npy' claims 2147483776 bytes, over the 536870912-byte limit")
    assert seconds < 0.5, seconds
    assert peak < 8 * 2**20, peak  # the 2 MB arrays.npz, never the 2 GiB
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 64 * 1024  # KiB: < 64 MiB growth


def test_an_inconsistent_array_within_the_limit_is_refused_before_it_is_inflated(tmp_path):
    """256 MiB fits the limit, but its header's shape cannot match the 1-token run, so no byte of it is inflated."""
    path = bomb_file(tmp_path / "inconsistent.ecco", 256 * 2**20)
    seconds, peak = refused(path, r"token_ids has shape \(67108864,\); expected 1 dimensions with axis 0 = 1")
    assert seconds < 0.5 and peak < 4 * 2**20, (seconds, peak)


def test_a_member_that_lies_about_its_size_is_refused_without_inflating(tmp_path):
    small = bomb_file(tmp_path / "liar.ecco", GIB, declared=1000)  # claims 1000 bytes, inflates to 1 GiB
    seconds, peak = refused(small, r"array .token_ids. is damaged \(BadZipFile: .Bad CRC-32")
    assert seconds < 0.5 and peak < 8 * 2**20
    header = npy_header((24,), "<f4")  # a header that matches the declared size; the stream still holds 1 GiB more
    stream, crc = deflate_bomb(header, 2**24)
    npz = raw_zip([("token_ids.npy", zipfile.ZIP_DEFLATED, stream, crc, len(header) + 96)])
    meta, _ = read_parts(sample_run().save(tmp_path / "ok.ecco"))
    seconds, peak = refused(write_parts(tmp_path / "liar2.ecco", meta, npz=npz), r"token_ids.*(CRC|damaged)")
    assert seconds < 0.5 and peak < 8 * 2**20


def test_an_npy_header_claiming_4_tb_is_refused_before_allocating(tmp_path):
    path = header_claims_file(tmp_path / "huge.ecco", (2**39,), "<f8")
    seconds, peak = refused(path, r"claims 4398046511104 bytes|header claims shape \(549755813888,\)")
    assert seconds < 0.5 and peak < 4 * 2**20


def test_the_file_size_limit_is_checked_before_reading_and_can_be_raised(tmp_path):
    sparse = tmp_path / "sparse.ecco"
    with open(sparse, "wb") as f:
        f.truncate(MAX_LOAD_BYTES + 1)  # sparse: no disk, no reading
    seconds, _ = refused(sparse, rf"is {MAX_LOAD_BYTES + 1} bytes, over the {MAX_LOAD_BYTES}-byte limit.*max_bytes=")
    assert seconds < 0.1
    good = sample_run().save(tmp_path / "run.ecco")
    refused(good, r"over the 100-byte limit", max_bytes=100)
    size = good.stat().st_size  # the file passes; its meta.json is over max_bytes // 16
    refused(good, rf"member meta.json claims \d+ bytes, over the {size // 16}-byte limit", max_bytes=size)
    assert ecco_sdk.load(good, max_bytes=10**6).tokens == sample_run().tokens


def test_a_directory_is_refused(tmp_path):
    refused(tmp_path, "is a directory, not a regular file")


def test_a_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        ecco_sdk.load(tmp_path / "nope.ecco")


@pytest.mark.timeout(120)
def test_dev_zero_and_a_fifo_are_refused_without_reading(tmp_path):
    """In a child process capped at 4 GiB of address space, so a regression cannot eat the machine's memory."""
    fifo = tmp_path / "pipe.ecco"
    os.mkfifo(fifo)
    code = (
        "import json, sys, time, ecco_sdk\n"
        "out = {}\n"
        "for p in sys.argv[1:]:\n"
        "    t = time.perf_counter()\n"
        "    try:\n"
        "        ecco_sdk.load(p); out[p] = ['loaded', 0]\n"
        "    except Exception as e:\n"
        "        out[p] = [type(e).__name__ + ': ' + str(e), time.perf_counter() - t]\n"
        "print(json.dumps(out))\n"
    )

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (8 * GIB, 8 * GIB))

    proc = subprocess.run(
        [sys.executable, "-c", code, "/dev/zero", str(fifo)],
        capture_output=True,
        text=True,
        timeout=100,
        preexec_fn=cap,
        cwd=Path(__file__).parent,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    message, seconds = result["/dev/zero"]
    assert message.startswith("FileFormatError") and "a character device, not a regular file" in message
    assert seconds < 0.1
    message, seconds = result[str(fifo)]
    assert message.startswith("FileFormatError") and "a FIFO (named pipe), not a regular file" in message
    assert seconds < 0.1


def _nested(depth: int) -> bytes:
    return b'{"format": "ecco_sdk.OutputSeq", "version": 1, "generation": ' + b"[" * depth + b"]" * depth + b"}"


def _drop(*names):
    def edit(arrays):
        for n in names:
            del arrays[n]

    return edit


def _set(name, value):
    def edit(arrays):
        arrays[name] = value

    return edit


META_CASES = {
    "meta_is_a_list": (lambda m: [m], r"meta.json holds a list, not an object"),
    "version_is_a_string": (lambda m: {**m, "version": "1"}, r"'version' must be a whole number >= 1, got '1'"),
    "version_is_null": (lambda m: {**m, "version": None}, r"'version' must be a whole number >= 1, got None"),
    "version_is_newer": (lambda m: {**m, "version": 99}, r"newer ecco_sdk \(format version 99\)"),
    "foreign_format": (lambda m: {**m, "format": "x" * 500}, r"not an ecco_sdk OutputSeq file \(format='xxx.*\.\.\.\)"),
    "attributions_is_a_list": (lambda m: {**m, "attributions": []}, r"'attributions' must be an object, got \[\]"),
    "tokens_is_a_number": (lambda m: {**m, "tokens": 5}, r"'tokens' must be a non-empty list of strings, got 5"),
    "tokens_hold_numbers": (lambda m: {**m, "tokens": [1, 2, 3, 4, 5]}, r"'tokens' must be a non-empty list"),
    "n_generated_a_million": (lambda m: {**m, "n_generated": 10**6}, r"3 input \+ 1000000 generated tokens exceed"),
    "n_generated_negative": (lambda m: {**m, "n_generated": -1}, r"'n_generated' must be a whole number >= 0"),
    "n_generated_is_true": (lambda m: {**m, "n_generated": True}, r"'n_generated' must be a whole number"),
    "kind_unknown": (lambda m: {**m, "kind": "rnn"}, r"'kind' must be 'causal', 'seq2seq' or 'encoder'"),
    "lone_surrogate_token": (
        lambda m: {**m, "tokens": ["a", " b\ud800", " c", " d", " e"]},
        r"meta.json holds a lone surrogate \(\\ud800\), not text",
    ),
    "unknown_field": (lambda m: {**m, "evil": 1}, r"unexpected fields \['evil'\]"),
    "missing_tokens": (lambda m: {k: v for k, v in m.items() if k != "tokens"}, r"meta.json lacks tokens"),
    "candidate_rows_differ": (
        lambda m: {**m, "candidate_tokens": m["candidate_tokens"][:1]},
        r"candidates of shape \(2, 3\) do not match",
    ),
    "activation_layers_mismatch": (lambda m: {**m, "activation_layers": [0]}, r"lists 1 layers but activations hold 2"),
    "attribution_field_wrong_type": (
        lambda m: {**m, "attributions": {"saliency": {**m["attributions"]["saliency"], "n_steps": "16"}}},
        r"attribution 'saliency': 'n_steps' has the wrong type \('16'\)",
    ),
}

ARRAY_CASES = {
    "missing_token_ids": (_drop("token_ids"), r"arrays.npz lacks token_ids"),
    "missing_candidate_probs": (_drop("candidate_probs"), r"only one of candidate_ids and candidate_probs"),
    "missing_attribution_scores": (_drop("attr/saliency/scores_l2"), r"attribution 'saliency' lacks arrays scores_l2"),
    "token_ids_too_short": (
        _set("token_ids", np.array([1, 2])),
        r"token_ids has shape \(2,\); expected 1 .*axis 0 = 5",
    ),
    "token_ids_are_floats": (_set("token_ids", np.ones(5)), r"token_ids has dtype float64; expected integers"),
    "hidden_states_wrong_positions": (
        _set("hidden_states", np.zeros((3, 9, 4), np.float32)),
        r"hidden_states has shape \(3, 9, 4\); expected 3 dimensions with axis 1 = 5",
    ),
    "activations_wrong_rank": (_set("activations", np.zeros((2, 6), np.float32)), r"activations has shape \(2, 6\)"),
    "scores_wrong_width": (
        _set("attr/saliency/scores_sum", np.zeros((2, 7), np.float32)),
        r"attribution saliency scores_sum has shape \(2, 7\)",
    ),
    "target_ids_do_not_match_targets": (
        _set("attr/saliency/target_ids", np.array([1, 2, 3])),
        r"attribution saliency target_ids has shape \(3,\)",
    ),
    "target_position_out_of_range": (
        _set("attr/saliency/target_positions", np.array([3, 50])),
        r"target positions fall outside the 5 tokens",
    ),
    "unknown_attribution_array": (
        _set("attr/ig/scores_l2", np.zeros((2, 5))),
        r"holds 'attr/ig/scores_l2', which meta",
    ),
    "unexpected_array": (_set("payload", np.zeros(3)), r"unexpected arrays \['payload'\]"),
    "object_array": (
        _set("hidden_states", np.array([{"a": 1}], dtype=object)),
        r"array 'hidden_states' has dtype 'object'; saved runs hold only numbers",
    ),
    "string_array": (
        _set("token_ids", np.array(["a", "b"])),
        r"array 'token_ids' has dtype '<U1'; saved runs hold only numbers",
    ),
}


@pytest.mark.parametrize("case", sorted(META_CASES))
def test_a_crafted_meta_json_is_a_file_format_error_naming_the_problem(tmp_path, case):
    edit, match = META_CASES[case]
    seconds, peak = refused(variant(tmp_path, case, meta_fn=edit), match)
    assert seconds < 0.5 and peak < 4 * 2**20


@pytest.mark.parametrize("case", sorted(ARRAY_CASES))
def test_crafted_arrays_are_a_file_format_error_naming_the_problem(tmp_path, case):
    edit, match = ARRAY_CASES[case]
    seconds, peak = refused(variant(tmp_path, case, arrays_fn=edit), match)
    assert seconds < 0.5 and peak < 4 * 2**20


def test_an_npz_without_any_arrays_is_refused(tmp_path):
    meta, _ = read_parts(sample_run().save(tmp_path / "ok.ecco"))
    refused(write_parts(tmp_path / "empty.ecco", meta, {}), r"arrays.npz lacks token_ids")


def test_deeply_nested_json_is_a_file_format_error_not_a_recursion_error(tmp_path):
    path = write_parts(tmp_path / "deep.ecco", _nested(200_000), {"token_ids": np.array([1])})
    seconds, _ = refused(path, r"meta.json nests too deeply")
    assert seconds < 1.0


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("text", b"not a zip", r"not a zip file \(no end-of-directory record\)"),
        ("truncated", None, r"not a|damaged|readable"),
        ("bad_json", b"{", r"meta.json is not valid JSON"),
        ("bad_utf8", b'{"a": "\xff"}', r"meta.json is not UTF-8 text"),
    ],
)
def test_damaged_files_are_file_format_errors(tmp_path, name, content, match):
    path = tmp_path / f"{name}.ecco"
    if name == "text":
        path.write_bytes(content)
    elif name == "truncated":
        data = sample_run().save(tmp_path / "ok.ecco").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        write_parts(path, content, {"token_ids": np.array([1])})
    refused(path, match)


def test_a_zip_with_too_many_members_or_bzip2_is_refused(tmp_path):
    many = raw_zip([(f"m{i}", zipfile.ZIP_STORED, b"", 0, 0) for i in range(20)])
    (tmp_path / "many.ecco").write_bytes(many)
    refused(tmp_path / "many.ecco", r"declares 20 members")
    bz = raw_zip([("meta.json", zipfile.ZIP_BZIP2, b"xx", 0, 2), ("arrays.npz", zipfile.ZIP_STORED, b"", 0, 0)])
    (tmp_path / "bz.ecco").write_bytes(bz)
    refused(tmp_path / "bz.ecco", r"member meta.json uses compression method 12; saved runs use only stored or deflate")


@pytest.mark.parametrize("family", ["gpt2", "t5", "bert"])
def test_real_runs_of_every_model_kind_pass_the_consistency_checks(tiny_model_dir, tmp_path, family):
    """Causal (with attention and two attributions), encoder-decoder and encoder runs all load back exactly."""
    lm = ecco_sdk.from_pretrained(tiny_model_dir(family), activations=True, attention=family != "t5", verbose=False)
    if family == "bert":
        out = lm(["one two three"], attention=True)[0]
    elif family == "t5":
        out = lm.generate("one two three", generate=3, attribution=["saliency"])
    else:
        out = lm.generate("one two three", generate=3, attribution=["saliency", "ig"], attention=True)
    back = ecco_sdk.load(out.save(tmp_path / "run.ecco"))
    for name in ("token_ids", "hidden_states", "activations", "encoder_hidden_states", "encoder_activations"):
        a, b = getattr(out, name), getattr(back, name)
        assert (a is None and b is None) or np.array_equal(a, b), name
    assert (out.attention is None) == (back.attention is None)
    assert sorted(back.attributions) == sorted(out.attributions)
