"""Notification channels of one user: named apprise URLs, encrypted at rest, never shown back."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..schemas import ChannelDeleted, ChannelList, ChannelOut
from ..store import Database, NotificationChannel, Rule, RuleChannel
from ..store.secrets import SecretBox
from ..store.types import utcnow
from .apprise_urls import check_apprise_url
from .errors import Conflict, InvalidInput, NotFound
from .limits import check_name

__all__ = ["ChannelService"]


class ChannelService:
    def __init__(self, db: Database, user_id: int, secrets: SecretBox) -> None:
        self.db = db
        self.user_id = user_id
        self.secrets = secrets

    def add(self, name: str, apprise_url: str) -> ChannelOut:
        name = check_name("name", name)
        checked = check_apprise_url(apprise_url)
        with self.db.session() as session:
            if self._find(session, name) is not None:
                raise Conflict(
                    f"You already have a channel named {name!r}: delete it first to replace it, or choose another name."
                )
            channel = NotificationChannel(
                owner_id=self.user_id,
                name=name,
                url_encrypted=self.secrets.encrypt(checked.url),
                scheme=checked.scheme,
                host=checked.host,
                service=checked.service,
                created_at=utcnow(),
            )
            session.add(channel)
            try:
                session.flush()
            except IntegrityError:
                raise Conflict(f"You already have a channel named {name!r}.") from None
            return _out(channel)

    def list(self) -> ChannelList:
        with self.db.session() as session:
            channels = session.scalars(
                select(NotificationChannel)
                .where(NotificationChannel.owner_id == self.user_id)
                .order_by(NotificationChannel.name)
            )
            return ChannelList(channels=[_out(c) for c in channels])

    def delete(self, name: str) -> ChannelDeleted:
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput("name is empty: give the channel's name, as list_notification_channels shows it.")
        with self.db.session() as session:
            channel = self._find(session, name.strip()[:200])
            if channel is None:
                raise NotFound(
                    f"No channel named {name.strip()[:128]!r}: list_notification_channels shows your channels."
                )
            session.delete(channel)
            still = session.scalars(
                select(Rule.name)
                .join(RuleChannel, RuleChannel.rule_id == Rule.id)
                .where(RuleChannel.owner_id == self.user_id, RuleChannel.channel_name == channel.name,
                       Rule.deleted_at.is_(None))
            )
            return ChannelDeleted(deleted=channel.name, rules_still_notifying=sorted(set(still)))

    def _find(self, session, name: str) -> NotificationChannel | None:  # noqa: ANN001
        return session.scalars(
            select(NotificationChannel).where(
                NotificationChannel.owner_id == self.user_id, NotificationChannel.name == name
            )
        ).first()


def _out(channel: NotificationChannel) -> ChannelOut:
    return ChannelOut(
        name=channel.name,
        scheme=channel.scheme,
        host=channel.host,
        service=channel.service,
        created_at=channel.created_at,
    )
