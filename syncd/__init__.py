"""syncd: keeps IntelePeer SmartCommunicator agents in step with Microsoft Entra ID groups.

Importing the package first imports structlog with rich hidden: structlog imports rich (and pygments) as
soon as it is installed, only to offer rich tracebacks in its console renderer, which syncd does not use
(its console logs keep plain tracebacks). That import would cost every `syncd` process some 50 ms of CPU;
rich is loaded only by the commands that draw on a terminal (`syncd.cli.terminal`).
"""

import sys

if "structlog" not in sys.modules and "rich" not in sys.modules:
    sys.modules["rich"] = None  # type: ignore[assignment]  # `import rich` raises ImportError meanwhile
    try:
        import structlog  # noqa: F401
    finally:
        del sys.modules["rich"]

__version__ = "0.1.0"
