"""Initial schema: users, tokens, rules, per-series state, alerts, events, silences,
channels, the notification outbox and log, and engine leases.

Revision ID: 0001
Revises: 
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# Tables are InnoDB in utf8mb4 on MySQL whatever the server default, with binary (case-sensitive)
# comparison as on SQLite: rule and channel names are case-sensitive identifiers. Ignored elsewhere.
TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
# Rule text may pass 64 KB of utf8mb4, which is all TEXT holds on MySQL.
LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql")
# Timestamps are naive UTC; MySQL keeps microseconds only with an explicit precision.
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('name', name=op.f('uq_users_name')),
    **TABLE_OPTIONS,
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('last_used_at', TIMESTAMP, nullable=True),
    sa.Column('revoked_at', TIMESTAMP, nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash')),
    **TABLE_OPTIONS,
    )
    op.create_index('ix_api_tokens_user_id', 'api_tokens', ['user_id'])

    op.create_table('notification_channels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('url_encrypted', sa.Text(), nullable=False),
    sa.Column('scheme', sa.String(length=32), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('service', sa.String(length=64), nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_notification_channels_owner_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_channels')),
    sa.UniqueConstraint('owner_id', 'name', name=op.f('uq_notification_channels_owner_id_name')),
    **TABLE_OPTIONS,
    )
    op.create_table('rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('live_name', sa.String(length=128), nullable=True),
    sa.Column('text', LONG_TEXT, nullable=False),
    sa.Column('canonical', LONG_TEXT, nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('every_seconds', sa.Integer(), nullable=False),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('updated_at', TIMESTAMP, nullable=False),
    sa.Column('deleted_at', TIMESTAMP, nullable=True),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_rules_owner_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rules')),
    sa.UniqueConstraint('owner_id', 'live_name', name=op.f('uq_rules_owner_id_live_name')),
    **TABLE_OPTIONS,
    )
    op.create_index('ix_rules_enabled_deleted_at', 'rules', ['enabled', 'deleted_at'])
    op.create_index('ix_rules_owner_id_deleted_at_name', 'rules', ['owner_id', 'deleted_at', 'name'])

    op.create_table('alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('series_key', sa.String(length=64), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('started_at', TIMESTAMP, nullable=False),
    sa.Column('resolved_at', TIMESTAMP, nullable=True),
    sa.Column('values_at_start', sa.JSON(), nullable=True),
    sa.Column('values_at_resolution', sa.JSON(), nullable=True),
    sa.Column('acknowledged_by', sa.Integer(), nullable=True),
    sa.Column('acknowledged_at', TIMESTAMP, nullable=True),
    sa.ForeignKeyConstraint(['acknowledged_by'], ['users.id'], name=op.f('fk_alerts_acknowledged_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_alerts_owner_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rule_id'], ['rules.id'], name=op.f('fk_alerts_rule_id_rules'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts')),
    **TABLE_OPTIONS,
    )
    op.create_index('ix_alerts_acknowledged_by', 'alerts', ['acknowledged_by'])
    op.create_index('ix_alerts_owner_id_started_at_id', 'alerts', ['owner_id', 'started_at', 'id'])
    op.create_index('ix_alerts_owner_id_state_started_at_id', 'alerts', ['owner_id', 'state', 'started_at', 'id'])
    op.create_index('ix_alerts_rule_id_series_key_state', 'alerts', ['rule_id', 'series_key', 'state'])
    op.create_index('ix_alerts_rule_id_started_at_id', 'alerts', ['rule_id', 'started_at', 'id'])

    op.create_table('engine_leases',
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=False),
    sa.Column('expires_at', TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['rule_id'], ['rules.id'], name=op.f('fk_engine_leases_rule_id_rules'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('rule_id', name=op.f('pk_engine_leases')),
    **TABLE_OPTIONS,
    )
    op.create_index('ix_engine_leases_expires_at', 'engine_leases', ['expires_at'])

    op.create_table('silences',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('starts_at', TIMESTAMP, nullable=False),
    sa.Column('ends_at', TIMESTAMP, nullable=False),
    sa.Column('comment', sa.String(length=500), nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_silences_owner_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rule_id'], ['rules.id'], name=op.f('fk_silences_rule_id_rules'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_silences')),
    **TABLE_OPTIONS,
    )
    op.create_index('ix_silences_owner_id_ends_at', 'silences', ['owner_id', 'ends_at'])
    op.create_index('ix_silences_rule_id_ends_at', 'silences', ['rule_id', 'ends_at'])

    op.create_table('alert_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('alert_id', sa.Integer(), nullable=False),
    sa.Column('at', TIMESTAMP, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('from_state', sa.String(length=16), nullable=True),
    sa.Column('to_state', sa.String(length=16), nullable=True),
    sa.Column('severity', sa.String(length=16), nullable=True),
    sa.Column('values', sa.JSON(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_alert_events_alert_id_alerts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_alert_events_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_events')),
    **TABLE_OPTIONS,
    )
    op.create_index('ix_alert_events_alert_id_at', 'alert_events', ['alert_id', 'at'])
    op.create_index('ix_alert_events_user_id', 'alert_events', ['user_id'])

    op.create_table('notification_outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=191), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=True),
    sa.Column('alert_id', sa.Integer(), nullable=True),
    sa.Column('channel_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', TIMESTAMP, nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('sent_at', TIMESTAMP, nullable=True),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_notification_outbox_alert_id_alerts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['channel_id'], ['notification_channels.id'], name=op.f('fk_notification_outbox_channel_id_notification_channels'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_notification_outbox_owner_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rule_id'], ['rules.id'], name=op.f('fk_notification_outbox_rule_id_rules'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_outbox')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_notification_outbox_idempotency_key')),
    **TABLE_OPTIONS,
    )
    op.create_index('ix_notification_outbox_alert_id', 'notification_outbox', ['alert_id'])
    op.create_index('ix_notification_outbox_channel_id', 'notification_outbox', ['channel_id'])
    op.create_index('ix_notification_outbox_owner_id', 'notification_outbox', ['owner_id'])
    op.create_index('ix_notification_outbox_rule_id', 'notification_outbox', ['rule_id'])
    op.create_index('ix_notification_outbox_status_next_attempt_at', 'notification_outbox', ['status', 'next_attempt_at'])

    op.create_table('rule_states',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('series_key', sa.String(length=64), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=True),
    sa.Column('since', TIMESTAMP, nullable=True),
    sa.Column('last_evaluated_at', TIMESTAMP, nullable=True),
    sa.Column('last_values', sa.JSON(), nullable=True),
    sa.Column('keep_firing_until', TIMESTAMP, nullable=True),
    sa.Column('last_notified_at', TIMESTAMP, nullable=True),
    sa.Column('alert_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_rule_states_alert_id_alerts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['rule_id'], ['rules.id'], name=op.f('fk_rule_states_rule_id_rules'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rule_states')),
    sa.UniqueConstraint('rule_id', 'series_key', name=op.f('uq_rule_states_rule_id_series_key')),
    **TABLE_OPTIONS,
    )
    op.create_index('ix_rule_states_alert_id', 'rule_states', ['alert_id'])

    op.create_table('notification_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('outbox_id', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('at', TIMESTAMP, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['outbox_id'], ['notification_outbox.id'], name=op.f('fk_notification_log_outbox_id_notification_outbox'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_log')),
    **TABLE_OPTIONS,
    )
    op.create_index('ix_notification_log_outbox_id_at', 'notification_log', ['outbox_id', 'at'])


def downgrade() -> None:
    op.drop_index('ix_notification_log_outbox_id_at', table_name='notification_log')

    op.drop_table('notification_log')
    op.drop_index('ix_rule_states_alert_id', table_name='rule_states')

    op.drop_table('rule_states')
    op.drop_index('ix_notification_outbox_status_next_attempt_at', table_name='notification_outbox')
    op.drop_index('ix_notification_outbox_rule_id', table_name='notification_outbox')
    op.drop_index('ix_notification_outbox_owner_id', table_name='notification_outbox')
    op.drop_index('ix_notification_outbox_channel_id', table_name='notification_outbox')
    op.drop_index('ix_notification_outbox_alert_id', table_name='notification_outbox')

    op.drop_table('notification_outbox')
    op.drop_index('ix_alert_events_user_id', table_name='alert_events')
    op.drop_index('ix_alert_events_alert_id_at', table_name='alert_events')

    op.drop_table('alert_events')
    op.drop_index('ix_silences_rule_id_ends_at', table_name='silences')
    op.drop_index('ix_silences_owner_id_ends_at', table_name='silences')

    op.drop_table('silences')
    op.drop_index('ix_engine_leases_expires_at', table_name='engine_leases')

    op.drop_table('engine_leases')
    op.drop_index('ix_alerts_rule_id_started_at_id', table_name='alerts')
    op.drop_index('ix_alerts_rule_id_series_key_state', table_name='alerts')
    op.drop_index('ix_alerts_owner_id_state_started_at_id', table_name='alerts')
    op.drop_index('ix_alerts_owner_id_started_at_id', table_name='alerts')
    op.drop_index('ix_alerts_acknowledged_by', table_name='alerts')

    op.drop_table('alerts')
    op.drop_index('ix_rules_owner_id_deleted_at_name', table_name='rules')
    op.drop_index('ix_rules_enabled_deleted_at', table_name='rules')

    op.drop_table('rules')
    op.drop_table('notification_channels')
    op.drop_index('ix_api_tokens_user_id', table_name='api_tokens')

    op.drop_table('api_tokens')
    op.drop_table('users')
