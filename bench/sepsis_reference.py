"""Measure the reference sepsis simulator (``sepsisSimDiabetes`` in clinicalml/gumbel-max-scm, MIT) once, for
tests/envs/test_sepsis.py: death and discharge rates and mean episode length under one fixed action or uniform
random actions, 20 steps, random non-absorbing starts.

Run from a checkout of that repository (it needs its ``sepsisSimDiabetes`` package and ``tqdm``):

    printf '%s\n' 0 1 2 3 4 5 6 7 uniform | xargs -P 3 -I{} python /path/to/bench/sepsis_reference.py 100000 {}

Results of 2026-12-05 (commit d62995de of the reference): bench/results/sepsis-reference-2026-12-05.json.
"""

import json
import sys
import time

import numpy as np
from sepsisSimDiabetes.DataGenerator import DataGenerator  # type: ignore[import-not-found]

N = int(sys.argv[1])
which = sys.argv[2]
np.random.seed(12345 + (8 if which == "uniform" else int(which)))  # the reference draws from numpy's global RNG
if which == "uniform":
    pol = np.full((1440, 8), 1 / 8)
else:
    pol = np.zeros((1440, 8))
    pol[:, int(which)] = 1.0
t = time.time()
states, actions, lengths, rewards, diab, _, _ = DataGenerator().simulate(
    N, 20, policy=pol, policy_idx_type="full", p_diabetes=0.2
)
r = rewards.sum(axis=(1, 2))
out = dict(
    policy=which, n=N, death=float((r == -1).mean()), discharge=float((r == 1).mean()),
    mean_length=float(lengths.mean()), sd_length=float(lengths.std(ddof=1)), seconds=time.time() - t,
)  # fmt: skip
print(json.dumps(out), flush=True)
