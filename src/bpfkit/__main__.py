"""``python -m bpfkit`` runs the command line."""

from .cli.main import main

main()
