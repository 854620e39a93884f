"""The `ecco-sdk` command: list models, a quick demo, the app, factor explanations and Space publishing."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .errors import EccoError


def _cmd_models(args: argparse.Namespace) -> int:
    from .models import list_models

    rows = [m.to_dict() for m in list_models()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        state = "ready" if r["available"] and r["cached"] else ("available" if r["available"] else "missing")
        print(f"{r['name']:<28} {r['kind']:<8} {state:<10} {r['description']}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .lm import from_pretrained

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
    from .explain import explain_text
    from .lm import from_pretrained

    lm = from_pretrained(args.model, verbose=not args.quiet)
    lo, hi = _parse_layers(args.layers)
    backend = args.backend if not args.llm else f"{args.backend}:{args.llm}"
    result = explain_text(
        lm, args.text, n_components=args.components, from_layer=lo, to_layer=hi, backend=backend,
        score=not args.no_score, held_out=args.held_out or None, retriever=args.retriever,
        n_examples=args.examples,
    )
    print(json.dumps(result.to_dict(), indent=2, default=str) if args.json else str(result))
    return 0


def _cmd_app(args: argparse.Namespace) -> int:
    from pathlib import Path

    app_file = Path(__file__).resolve().parent.parent / "space" / "app.py"
    if not app_file.exists():
        raise EccoError(f"the app lives in the repository's space/ folder, not found at {app_file}")
    import runpy

    sys.argv = [str(app_file), "--host", args.host, "--port", str(args.port)]
    runpy.run_path(str(app_file), run_name="__main__")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface definition (kept separate so tests can inspect it)."""
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
    e.add_argument("--llm", help="explainer model name (openai: e.g. gpt-4o-mini; local: an ecco_sdk model name)")
    e.add_argument("--retriever", choices=["hybrid", "dense", "bm25"], default="hybrid")
    e.add_argument("--examples", type=int, default=4, help="few-shot examples per prompt")
    e.add_argument("--held-out", action="append", help="held-out text for scoring (repeatable)")
    e.add_argument("--no-score", action="store_true")
    e.add_argument("--json", action="store_true")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=_cmd_explain)

    a = sub.add_parser("app", help="start the Gradio app")
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=int, default=7860)
    a.set_defaults(func=_cmd_app)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ecco-sdk` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EccoError as err:
        print(f"ecco-sdk: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
