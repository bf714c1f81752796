"""syncd: keeps IntelePeer SmartCommunicator agents in step with Microsoft Entra ID groups."""

__version__ = "0.1.0"
