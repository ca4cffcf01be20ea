"""Performance harness for authserver (issue 8): see bench/README.md and docs/performance.md."""
