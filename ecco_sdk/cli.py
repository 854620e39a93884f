"""The `ecco-sdk` command: list models, a quick demo, the app, factor explanations and Space publishing."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import EccoError
from .explain import SKIP_FIRST, explain_text
from .lm import from_pretrained
from .models import list_models

if TYPE_CHECKING:
    from .app.publish import StagedSpace


def _cmd_models(args: argparse.Namespace) -> int:
    rows = [m.to_dict() for m in list_models()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        state = "ready" if r["available"] and r["cached"] else ("available" if r["available"] else "missing")
        print(f"{r['name']:<28} {r['kind']:<8} {state:<10} {r['description']}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    lm = from_pretrained(args.model, verbose=not args.quiet)
    out = lm.generate(args.prompt, generate=args.tokens)
    print(repr(out))
    print(f"\n{out.text}\n")
    for pos, step in zip(out.generated_positions, out.candidates):
        shown = ", ".join(f"{c.token!r} {c.prob:.3f}" for c in step[: args.candidates])
        print(f"{pos:>4} {out.tokens[pos]!r:<16} <- {shown}")
    return 0


def _parse_layers(text: str | None) -> tuple[int | None, int | None]:
    if not text:
        return None, None
    lo, sep, hi = text.partition(":")
    try:
        return (int(lo) if lo else None), (int(hi) if sep and hi else None)
    except ValueError as err:
        raise EccoError(f"--layers must look like FROM:TO (e.g. 25:30), got {text!r}") from err


def _cmd_explain(args: argparse.Namespace) -> int:
    lm = from_pretrained(args.model, verbose=not args.quiet)
    lo, hi = _parse_layers(args.layers)
    backend = args.backend if not args.llm else f"{args.backend}:{args.llm}"
    result = explain_text(
        lm,
        args.text,
        n_components=args.components,
        from_layer=lo,
        to_layer=hi,
        backend=backend,
        score=not args.no_score,
        held_out=args.held_out or None,
        retriever=args.retriever,
        n_examples=args.examples,
        skip_first=0 if args.keep_first else SKIP_FIRST,
    )
    print(json.dumps(result.to_dict(), indent=2, default=str) if args.json else str(result))
    return 0


def _cmd_app(args: argparse.Namespace) -> int:
    from .app import load_app  # here, not at the top: ecco_sdk.app adds 0.4-1.6 s (measured) to every command

    load_app().main(["--host", args.host, "--port", str(args.port)])
    return 0


def _cmd_space_deploy(args: argparse.Namespace) -> int:
    from .app import publish  # here, not at the top: see _cmd_app

    publish.check_repo_id(args.repo_id)
    publish.check_hardware(args.hardware)
    if args.stage_dir:
        staged = publish.stage_space(Path(args.stage_dir), source=args.source, wheel=args.wheel, pin=not args.no_pin)
        return _report_or_deploy(args, staged)
    with tempfile.TemporaryDirectory(prefix="ecco-space-") as tmp:
        staged = publish.stage_space(Path(tmp) / "space", source=args.source, wheel=args.wheel, pin=not args.no_pin)
        return _report_or_deploy(args, staged)


def _report_or_deploy(args: argparse.Namespace, staged: StagedSpace) -> int:
    from .app import publish  # here, not at the top: see _cmd_app

    print(publish.format_listing(staged, args.repo_id))
    if args.dry_run:
        print(
            f"dry run: nothing uploaded (staged in {staged.folder})" if args.stage_dir else "dry run: nothing uploaded"
        )
        return 0
    result = publish.deploy(
        staged,
        args.repo_id,
        token=args.token,
        private=args.private,
        hardware=args.hardware,
        commit_message=args.message,
    )
    print(f"uploaded {result.files} files to {result.url}\ncommit: {result.commit_url}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface definition (kept separate so tests can inspect it).

    Returns:
        The `ecco-sdk` parser, one subcommand per command.
    """
    p = argparse.ArgumentParser(prog="ecco-sdk", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("models", help="list the models that load offline")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=_cmd_models)

    d = sub.add_parser("demo", help="generate and print each step's candidate tokens")
    d.add_argument("prompt", nargs="?", default="Heathrow airport is located in the city of")
    d.add_argument("--model", default="smollm2-135m-instruct")
    d.add_argument("--tokens", type=int, default=8)
    d.add_argument("--candidates", type=int, default=5)
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=_cmd_demo)

    e = sub.add_parser("explain", help="factorize a text's neuron activations and explain each factor with an LLM")
    e.add_argument("text")
    e.add_argument("--model", default="smollm2-135m-instruct")
    e.add_argument("--components", type=int, default=3)
    e.add_argument("--layers", help="FROM:TO, half-open (e.g. 25:30); default all layers")
    e.add_argument("--backend", choices=["local", "openai"], default="local")
    e.add_argument(
        "--llm",
        help="explainer model name (openai: e.g. gpt-4o-mini; local: an ecco_sdk model name, by default "
        "qwen2.5-coder-1.5b-instruct when installed, else smollm2-135m-instruct)",
    )
    e.add_argument("--retriever", choices=["hybrid", "dense", "bm25"], default="hybrid")
    e.add_argument("--examples", type=int, default=4, help="few-shot examples per prompt")
    e.add_argument("--held-out", action="append", help="held-out text for scoring (repeatable)")
    e.add_argument("--no-score", action="store_true")
    e.add_argument(
        "--keep-first", action="store_true", help="factorize the first token too (left out: it is the attention sink)"
    )
    e.add_argument("--json", action="store_true")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=_cmd_explain)

    a = sub.add_parser("app", help="start the Gradio app")
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=int, default=7860)
    a.set_defaults(func=_cmd_app)

    s = sub.add_parser("space", help="publish the app as a Hugging Face Space")
    space_sub = s.add_subparsers(dest="space_command", required=True)
    dep = space_sub.add_parser(
        "deploy",
        help="stage space/ with the SDK's wheel, check the Space card, and upload it",
        description="Stage the Space (space/ files, ecco_sdk's wheel and its package unpacked next to app.py, "
        "a generated requirements.txt), check the README.md front matter, and upload it with huggingface_hub. "
        "The token comes from --token or HF_TOKEN (or a saved `hf auth login`) and is never printed.",
    )
    dep.add_argument("--repo-id", required=True, metavar="OWNER/NAME", help="the Space to create or update")
    dep.add_argument("--private", action="store_true", help="create the Space as private (ignored if it exists)")
    dep.add_argument("--token", help="a Hugging Face write token (prefer the HF_TOKEN environment variable)")
    dep.add_argument("--dry-run", action="store_true", help="list what would be uploaded and check it; no network")
    dep.add_argument("--hardware", help="request Space hardware after the upload (e.g. cpu-basic, zero-a10g, t4-small)")
    dep.add_argument("--message", help="commit message (default: 'Deploy ecco_sdk <version> Space')")
    dep.add_argument("--source", help="folder with app.py, README.md, requirements.txt (default: the repo's space/)")
    dep.add_argument("--wheel", help="use this ecco_sdk wheel instead of building one")
    dep.add_argument("--stage-dir", help="stage into this new or empty folder and keep it (default: a temporary one)")
    dep.add_argument("--no-pin", action="store_true", help="keep setup.py's version ranges instead of pinning")
    dep.set_defaults(func=_cmd_space_deploy)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ecco-sdk` console script.

    Args:
        argv: the arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 2 when ecco_sdk refused the input (the message is on stderr).
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EccoError as err:
        print(f"ecco-sdk: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
