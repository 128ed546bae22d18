"""The ``finegate`` command: a thin Typer layer over the library."""
