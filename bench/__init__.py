"""Benchmarks and fault drills: numbers measured side by side with their ceilings."""
