"""Configuration: the typed settings models, the loader (TOML + environment + `*_file`), logging set-up and
TLS contexts. Depends only on `syncd.core`.
"""
