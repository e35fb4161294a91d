"""Benchmark helpers: the machine's measured peak that kernel timings are compared against."""

from .peak import peak_gflops

__all__ = ["peak_gflops"]
