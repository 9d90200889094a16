"""Out-of-sample evaluation: purged walk-forward splits, metrics, baselines."""
