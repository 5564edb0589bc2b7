#!/usr/bin/env python3
"""Checks that Python `tokenizers` loads a tokenizer.json that `falconry tokenize train` wrote,
and that it encodes and decodes real text: Falcon's special tokens at ids 0-11, the asked
vocabulary size, and a lossless round trip on every fixture document.

Run: /work/main/.venv/bin/python scripts/check_tokenizer.py TOKENIZER_JSON [VOCAB_SIZE]
"""
import json
import os
import sys

import tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tokenize", "tests", "fixtures", "falcon_docs.jsonl")
SPECIAL = [">>TITLE<<", ">>ABSTRACT<<", ">>INTRODUCTION<<", ">>SUMMARY<<", ">>COMMENT<<", ">>ANSWER<<",
           ">>QUESTION<<", ">>DOMAIN<<", ">>PREFIX<<", ">>SUFFIX<<", ">>MIDDLE<<", "<|endoftext|>"]


def main():
    tok = tokenizers.Tokenizer.from_file(sys.argv[1])
    if len(sys.argv) > 2:
        assert tok.get_vocab_size() == int(sys.argv[2]), tok.get_vocab_size()
    for i, s in enumerate(SPECIAL):
        assert tok.token_to_id(s) == i, (s, tok.token_to_id(s))
    n = tokens = 0
    for line in open(FIXTURE, encoding="utf-8"):
        text = json.loads(line)["text"]
        ids = tok.encode(text, add_special_tokens=False).ids
        assert tok.decode(ids, skip_special_tokens=False) == text, text[:80]
        n += 1
        tokens += len(ids)
    print(f"ok: {sys.argv[1]} loads in Python tokenizers {tokenizers.__version__}: "
          f"vocab {tok.get_vocab_size()}, <|endoftext|> = 11, {n} documents round-trip ({tokens} tokens)")


if __name__ == "__main__":
    main()
