"""The exit codes of the `syncd` command, which scripts and the container's supervisor depend on.

0 every in-scope user converged; 1 some operations failed or the cycle could not run (the rest still applied);
2 a configuration or usage error; 3 stopped by a safety guard (nothing offboarded).
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILURES, EXIT_CONFIG, EXIT_GUARD = 0, 1, 2, 3
