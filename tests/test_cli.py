"""The `ecco-sdk` command: models, demo on the embedded model, parser errors, and the Space deploy dry run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ecco_sdk import cli

REPO = Path(__file__).resolve().parent.parent
PROMPT = "Heathrow airport is located in the city of"


def test_models_lists_the_embedded_models(capsys):
    assert cli.main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines if line.strip()}
    # "ready" once converted into the cache, "available" on a fresh machine: installed either way
    assert rows["smollm2-135m-instruct"][1] == "causal" and rows["smollm2-135m-instruct"][2] in ("ready", "available")
    assert rows["minilm-l6"][1] == "encoder" and rows["minilm-l6"][2] in ("ready", "available")


def test_models_json_is_machine_readable(capsys):
    assert cli.main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert by_name["smollm2-135m-instruct"]["kind"] == "causal" and by_name["smollm2-135m-instruct"]["available"]
    assert by_name["minilm-l6"]["kind"] == "encoder"


@pytest.mark.slow
def test_demo_prints_the_generation_and_each_steps_candidates(smollm, capsys):
    assert cli.main(["demo", "--tokens", "2", "--quiet", "--candidates", "3"]) == 0
    out = capsys.readouterr().out
    expected = smollm.generate(PROMPT, generate=2)  # greedy: the demo must print this very run
    assert f"\n{expected.text}\n" in out
    steps = [line for line in out.splitlines() if " <- " in line]
    assert len(steps) == 2
    for line, pos in zip(steps, expected.generated_positions):
        assert line.split()[0] == str(pos)
        probs = [float(p) for p in re.findall(r" (\d\.\d{3})(?:,|$)", line)]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
        assert f"{expected.candidates[expected.generated_positions.index(pos)][0].token!r}" in line


@pytest.mark.slow
def test_demo_bad_token_count_is_a_clear_error(smollm, capsys):
    assert cli.main(["demo", "--tokens", "0", "--quiet"]) == 2
    assert "ecco-sdk: error: generate must be an integer >= 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: command"),
        (["nope"], "invalid choice: 'nope'"),
        (["demo", "--tokens", "two"], "invalid int value: 'two'"),
        (["space"], "the following arguments are required: space_command"),
        (["space", "deploy"], "the following arguments are required: --repo-id"),
        (["space", "publish"], "invalid choice: 'publish'"),
    ],
)
def test_parser_errors_exit_2_with_usage(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "usage: ecco-sdk" in err


def test_space_deploy_refuses_a_bad_repo_id_before_any_work(capsys):
    assert cli.main(["space", "deploy", "--repo-id", "not a repo", "--dry-run"]) == 2
    assert "ecco-sdk: error: --repo-id must look like OWNER/NAME" in capsys.readouterr().err
    assert cli.main(["space", "deploy", "--repo-id", "a/b", "--hardware", "gpu-huge", "--dry-run"]) == 2
    assert "unknown Space hardware 'gpu-huge'" in capsys.readouterr().err


def test_space_deploy_dry_run_lists_the_upload_without_network(tmp_path, monkeypatch, capsys):
    # the repository's space/ folder; a stub app.py only if the app is not there (yet)
    source = tmp_path / "space"
    shutil.copytree(REPO / "space", source, ignore=shutil.ignore_patterns("__pycache__"))
    if not (source / "app.py").exists():
        (source / "app.py").write_text("import gradio as gr\n")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: a network call would fail
    stage = tmp_path / "stage"
    argv = [
        "space",
        "deploy",
        "--repo-id",
        "alice/ecco",
        "--dry-run",
        "--source",
        str(source),
        "--stage-dir",
        str(stage),
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("Space card OK: ")
    assert "Space: alice/ecco" in out and "dry run: nothing uploaded" in out
    listed = {path: int(size) for size, path in re.findall(r"^\s+(\d+)  (\S+)$", out, flags=re.MULTILINE)}
    wheel = next(p for p in listed if p.endswith(".whl"))
    for path in ("app.py", "README.md", "requirements.txt", wheel, "ecco_sdk/explain/data/examples.json"):
        assert listed[path] == (stage / path).stat().st_size
    assert sorted(listed) == sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())


def test_the_console_script_is_installed():
    script = Path(sys.executable).with_name("ecco-sdk")
    out = subprocess.run([str(script), "space", "deploy", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for flag in ("--repo-id", "--private", "--token", "--dry-run", "--hardware"):
        assert flag in out.stdout
