-- Logins, counted per account and per address to refuse guessing (429) for a while. An attempt
-- is written before the password is checked (so concurrent guesses count too) and marked when
-- it succeeds. A counter, not a record: every failure is also in the audit log, and rows older
-- than the lock window no longer matter (an operator may prune them).
CREATE TABLE login_attempts (
  id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  account   TEXT NOT NULL CHECK (length(account) BETWEEN 1 AND 400),
  address   TEXT NOT NULL CHECK (length(address) BETWEEN 1 AND 100),
  at        TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
  succeeded BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX login_attempts_account ON login_attempts (account, at) WHERE NOT succeeded;
CREATE INDEX login_attempts_address ON login_attempts (address, at) WHERE NOT succeeded;
