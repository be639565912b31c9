-- At most one live (unconsumed) secret per flow and purpose, and per user
-- and purpose for secrets without a flow (invitations, recovery links): a
-- new code, link or invitation replaces the previous one, and two issued at
-- the same moment can no longer both stay valid. Revoked secrets have
-- consumed_at set and fall outside these indexes.
CREATE UNIQUE INDEX one_time_secrets_live_per_flow
    ON one_time_secrets(flow_id, purpose)
    WHERE consumed_at IS NULL AND flow_id IS NOT NULL;
CREATE UNIQUE INDEX one_time_secrets_live_per_user
    ON one_time_secrets(user_id, purpose)
    WHERE consumed_at IS NULL AND flow_id IS NULL;
