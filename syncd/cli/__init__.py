"""The `syncd` command line (entry point `syncd.cli.main:main`)."""
