"""The `triage` command line (`cli.app:app`), one module per command group; the top layer of the project."""
