"""The leaderboard: records summarised from the store, renderers returning text, figures."""
