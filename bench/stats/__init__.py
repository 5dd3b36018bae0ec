"""Statistics of stored results: metrics, hypothesis tests, paired comparisons and feature importance."""
