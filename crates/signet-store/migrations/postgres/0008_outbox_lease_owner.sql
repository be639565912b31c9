-- Leases name their holder (ADR 0012): a worker renews its lease while a
-- send is in flight and records the outcome only while it still holds it.
-- A message whose content has a lifetime (a sign-in code, an invitation
-- link) is never sent after `expires_at`.
ALTER TABLE outbox ADD COLUMN lease_owner TEXT;
ALTER TABLE outbox ADD COLUMN expires_at BIGINT;
