"""The service layer: every rule about who may see or change what lives here, not in the tools.

``Workspace(db, user_id, secrets)`` gives one user's view of the store:
``.rules``, ``.alerts``, ``.silences``, ``.channels``. ``UserService`` manages users and tokens.
"""

from __future__ import annotations

from ..store import Database
from ..store.secrets import SecretBox
from .alerts import AlertService
from .channels import ChannelService
from .errors import Conflict, InvalidInput, InvalidRule, NotFound, ServiceError, Unavailable
from .rules import RuleService
from .silences import SilenceService
from .users import Caller, IssuedToken, TokenInfo, UserDeleted, UserInfo, UserService, hash_token

__all__ = [
    "AlertService",
    "Caller",
    "ChannelService",
    "Conflict",
    "InvalidInput",
    "InvalidRule",
    "IssuedToken",
    "NotFound",
    "RuleService",
    "ServiceError",
    "SilenceService",
    "TokenInfo",
    "Unavailable",
    "UserDeleted",
    "UserInfo",
    "UserService",
    "Workspace",
    "hash_token",
]


class Workspace:
    """Everything one user may do, and nothing more."""

    def __init__(self, db: Database, user_id: int, secrets: SecretBox) -> None:
        self.user_id = user_id
        self.rules = RuleService(db, user_id)
        self.alerts = AlertService(db, user_id)
        self.silences = SilenceService(db, user_id)
        self.channels = ChannelService(db, user_id, secrets)
