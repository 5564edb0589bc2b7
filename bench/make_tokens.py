"""Random token shards for the GPU benches: `python3 bench/make_tokens.py DIR TOKENS`.

One uint16 shard of Falcon's vocabulary (65,024 ids) and the meta.json `falconry train` and
bench/torch_falcon.py read; seeded, so every call writes the same tokens.
"""

import json
import pathlib
import sys

import numpy as np

d, n = pathlib.Path(sys.argv[1]), int(sys.argv[2])
d.mkdir(parents=True, exist_ok=True)
t = np.random.default_rng(0).integers(0, 65024, n, dtype=np.uint16)
t.tofile(d / "shard-00000.bin")
(d / "meta.json").write_text(json.dumps({"dtype": "uint16", "vocab_size": 65024, "eos_id": 11,
    "shards": [{"file": "shard-00000.bin", "tokens": int(t.size), "documents": 1}]}))
