"""Command-line interface (typer): `seqlens --help`."""
