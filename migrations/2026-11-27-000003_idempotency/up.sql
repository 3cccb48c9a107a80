-- Idempotency keys of money-moving POSTs. A key's row is written in the same transaction as
-- the change it answered, so a stored answer means the change happened exactly once, and a
-- request that failed (rolled back) leaves no row behind: a failure never poisons its key.
CREATE TABLE idempotency_keys (
  principal_id     UUID NOT NULL,
  route            TEXT NOT NULL CHECK (length(route) BETWEEN 1 AND 200),
  key              TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
  fingerprint      BYTEA NOT NULL CHECK (octet_length(fingerprint) = 32),
  response_status  SMALLINT NOT NULL CHECK (response_status BETWEEN 200 AND 599),
  response_body    JSONB NOT NULL,
  created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (principal_id, route, key)
);
CREATE TRIGGER idempotency_keys_append_only BEFORE UPDATE ON idempotency_keys FOR EACH ROW EXECUTE FUNCTION danbao_forbid_change();
