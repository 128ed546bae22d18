"""``python -m finegate`` runs the CLI."""

from finegate.cli.main import run

if __name__ == "__main__":
    run()
