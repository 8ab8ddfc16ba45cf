"""`python -m seqlens` is the `seqlens` command (what `torchrun ... -m seqlens train ...` runs on each rank)."""

from seqlens.cli.main import main

main()
