"""roma_notebook: ROMA-01 AI trading agents, live and recorded, as pandas DataFrames."""
from .errors import AgentNotFound, AuthenticationError, ConnectionFailed, ProtocolError, RomaError

__version__ = "0.1.0"
__all__ = ["RomaError", "ProtocolError", "ConnectionFailed", "AgentNotFound", "AuthenticationError", "__version__"]
