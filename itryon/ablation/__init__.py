"""Ablation studies: train every (experiment, seed) cell, score it on a held-out split, tabulate with
confidence intervals over seeds (``itryon ablate``)."""
