"""Device commands and acknowledgements as the simulated devices see them: the wire format
lives in `ingest.commands` (shared with the service); `Action` is its `CommandAction`."""

from ingest.commands import Ack, AckStatus, Command, parse_ack, parse_command
from ingest.commands import CommandAction as Action

__all__ = ["Ack", "AckStatus", "Action", "Command", "parse_ack", "parse_command"]
