"""Lets `python -m syncd` run the same command as the `syncd` console script."""

from syncd.cli.main import main

raise SystemExit(main())
