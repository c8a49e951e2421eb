"""Notification channels of one user: named apprise URLs, encrypted at rest, never shown back."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..schemas import ChannelDeleted, ChannelList, ChannelOut
from ..store import Database, NotificationChannel, Rule, RuleChannel
from ..store.secrets import SecretBox
from ..store.types import utcnow
from .apprise_urls import SECRET_HOST_SCHEMES, check_apprise_url, shown_host
from .channel_policies import ChannelPolicies, check_policies
from .errors import Conflict, InvalidInput, NotFound
from .quotas import check_channel_quota
from .limits import MAX_NAME, check_length, check_name

__all__ = ["ChannelService"]


class ChannelService:
    def __init__(self, db: Database, user_id: int, secrets: SecretBox) -> None:
        self.db = db
        self.user_id = user_id
        self.secrets = secrets

    def add(self, name: str, apprise_url: str, policies: dict | None = None) -> ChannelOut:
        name = check_name("name", name)
        checked = check_apprise_url(apprise_url)
        settings = check_policies(policies)
        with self.db.session() as session:
            if self._find(session, name) is not None:
                raise Conflict(
                    f"You already have a channel named {name!r}: delete it first to replace it, or choose another name."
                )
            check_channel_quota(session, self.user_id)
            channel = NotificationChannel(
                owner_id=self.user_id,
                name=name,
                url_encrypted=self.secrets.encrypt(checked.url),
                scheme=checked.scheme,
                host=None if checked.scheme in SECRET_HOST_SCHEMES else checked.host,
                service=checked.service,
                created_at=utcnow(),
            )
            settings.store(channel)
            session.add(channel)
            try:
                session.flush()
            except IntegrityError:
                raise Conflict(f"You already have a channel named {name!r}.") from None
            return _out(channel, checked.host)

    def list(self) -> ChannelList:
        with self.db.session() as session:
            channels = session.scalars(
                select(NotificationChannel)
                .where(NotificationChannel.owner_id == self.user_id)
                .order_by(NotificationChannel.name)
            )
            return ChannelList(channels=[_out(c, self._shown_host(c)) for c in channels])

    def update(self, name: str, apprise_url: str | None = None, policies: dict | None = None) -> ChannelOut:
        """Change a channel's URL and/or policies (a key absent from ``policies`` keeps its value, ``null``
        restores its default). The name stays: rules name channels by it."""
        name = self._given_name(name)
        if apprise_url is None and policies is None:
            raise InvalidInput("Nothing to change: give a new apprise URL, policies or both.",
                               hint="policies keys: group_by, group_wait, group_interval, mute_during.")
        checked = check_apprise_url(apprise_url) if apprise_url is not None else None
        with self.db.session() as session:
            channel = self._owned(session, name)
            check_policies(policies, ChannelPolicies.of(channel)).store(channel)
            if checked is not None:
                channel.url_encrypted = self.secrets.encrypt(checked.url)
                channel.scheme, channel.service = checked.scheme, checked.service
                channel.host = None if checked.scheme in SECRET_HOST_SCHEMES else checked.host
            session.flush()  # a policy set to SQL NULL is read back
            return _out(channel, checked.host if checked is not None else self._shown_host(channel))

    def delete(self, name: str) -> ChannelDeleted:
        name = self._given_name(name)
        with self.db.session() as session:
            channel = self._owned(session, name)
            session.delete(channel)
            still = session.scalars(
                select(Rule.name)
                .join(RuleChannel, RuleChannel.rule_id == Rule.id)
                .where(RuleChannel.owner_id == self.user_id, RuleChannel.channel_name == channel.name,
                       Rule.deleted_at.is_(None))
            )
            return ChannelDeleted(deleted=channel.name, rules_still_notifying=sorted(set(still)))

    def _shown_host(self, channel: NotificationChannel) -> str | None:
        """The host as ``shown_host`` says now, from the URL: also for channels stored before it hid more,
        and for those whose host is not kept in plain text (ntfy, Matrix)."""
        if channel.host is None and channel.scheme not in SECRET_HOST_SCHEMES:
            return None
        try:
            return shown_host(channel.scheme, self.secrets.decrypt(channel.url_encrypted))
        except Exception:  # noqa: BLE001 - a URL that cannot be read shows no host
            return None

    @staticmethod
    def _given_name(name: str) -> str:
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput("name is empty: give the channel's name, as list_notification_channels shows it.")
        check_length("name", name.strip(), MAX_NAME)
        return name.strip()

    def _owned(self, session, name: str) -> NotificationChannel:  # noqa: ANN001
        """The caller's channel of that name; another user's is answered as missing."""
        channel = self._find(session, name)
        if channel is None:
            raise NotFound(f"No channel named {name[:128]!r}: list_notification_channels shows your channels.")
        return channel

    def _find(self, session, name: str) -> NotificationChannel | None:  # noqa: ANN001
        return session.scalars(
            select(NotificationChannel).where(
                NotificationChannel.owner_id == self.user_id, NotificationChannel.name == name
            )
        ).first()


def _out(channel: NotificationChannel, host: str | None) -> ChannelOut:
    return ChannelOut(
        name=channel.name,
        scheme=channel.scheme,
        host=host,
        service=channel.service,
        created_at=channel.created_at,
        policies=ChannelPolicies.of(channel).shown(),
    )
