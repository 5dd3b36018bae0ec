"""Running a suite: suite files, folds, task files, jobs, executors and the result store."""
