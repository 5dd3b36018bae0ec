"""Commands: the command line, explanations, prediction, reproduction checks and extraction exports."""
