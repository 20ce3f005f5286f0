"""One module per paper figure; each reads result files and writes PNG and PDF."""
