"""`python -m jaxdiff_rl ...` is the `jaxdiff-rl` command."""

from jaxdiff_rl.app.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
