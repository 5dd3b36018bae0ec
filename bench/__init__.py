"""cellbench: paired, patient-disjoint benchmarks of classical and deep models on cell microscopy."""

__version__ = "0.1.0"
