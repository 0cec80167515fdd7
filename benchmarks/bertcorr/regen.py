"""Command line of the BERT weight-correlation study: print a model's Figs 3-5 values, regenerate the CI reference
(tests/reference/bert_correlations_minilm.json), time the analysis on bert-base-sized weights.

    python -m benchmarks.bertcorr.regen --model minilm-l6
    python -m benchmarks.bertcorr.regen --model minilm-l6 \\
        --write-reference tests/reference/bert_correlations_minilm.json
    python -m benchmarks.bertcorr.regen --time-bert-base [--threads N] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from torch import nn

from benchmarks.bertcorr.statistics import ANALYSIS_THREADS, DEFAULT_RATE, REGENERATE_COMMAND, analyze_model


def _load_model(name: str) -> tuple[nn.Module, dict]:
    from transformers import AutoModel

    from benchmarks.models import resolve_model

    ref = resolve_model(name)
    return AutoModel.from_pretrained(ref.location), ref.identity


def bert_base_random(seed: int = 0) -> nn.Module:
    """A randomly initialised bert-base-sized BertModel (BertConfig() defaults), for timing."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    return BertModel(BertConfig())


def time_bert_base(repeats: int = 1, threads: int = ANALYSIS_THREADS) -> dict:
    """Seconds for the whole analysis (prune + Figs 3-5) on random bert-base weights."""
    model = bert_base_random()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        analyze_model(model, DEFAULT_RATE, threads)
        times.append(time.perf_counter() - start)
    return {"model": "BertModel(BertConfig()) random init", "analysis_threads": threads,
            "seconds": times, "best": min(times)}


def main(argv: list[str] | None = None) -> int:
    """Print a model's Figs 3-5 values as JSON, write the CI reference, or time bert-base."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bertcorr.regen", description=main.__doc__)
    parser.add_argument("--model", default="minilm-l6", help="alias, hub id or local folder (default minilm-l6)")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="per-matrix prune rate (default 0.5)")
    parser.add_argument("--write-reference", metavar="PATH", help="write the CI reference JSON here")
    parser.add_argument("--time-bert-base", action="store_true", help="time the analysis on random bert-base weights")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (default 3)")
    parser.add_argument("--threads", type=int, default=ANALYSIS_THREADS,
                        help=f"intra-op threads for the analysis (default {ANALYSIS_THREADS})")
    args = parser.parse_args(argv)
    if args.time_bert_base:
        print(json.dumps(time_bert_base(args.repeats, args.threads), indent=1))
        return 0
    model, identity = _load_model(args.model)
    result = analyze_model(model, args.rate, args.threads)
    if args.write_reference:
        from benchmarks.store import write_json_atomic

        payload = {"regenerate": REGENERATE_COMMAND, "model": identity, "atol": 1e-6, "result": result}
        write_json_atomic(args.write_reference, payload)
        print(f"wrote {args.write_reference}", file=sys.stderr)
    else:
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
