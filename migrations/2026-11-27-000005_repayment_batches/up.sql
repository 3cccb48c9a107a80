-- Daily repayment files (还款文件): a bank's batch of repayments and the outcome of each row.
-- A batch is processed in one transaction; its header is written last, with the final counts,
-- so both tables stay strictly append-only (the rows' foreign key to the header is deferred
-- to the commit).

CREATE TABLE repayment_batches (
  id         UUID PRIMARY KEY,
  bank_id    UUID NOT NULL REFERENCES banks (id),
  format     TEXT NOT NULL CHECK (format IN ('csv', 'json')),
  atomic     BOOLEAN NOT NULL,
  status     TEXT NOT NULL CHECK (status IN ('applied', 'rejected')),
  rows       INTEGER NOT NULL CHECK (rows BETWEEN 0 AND 200000),
  applied    INTEGER NOT NULL CHECK (applied >= 0),
  duplicates INTEGER NOT NULL CHECK (duplicates >= 0),
  failed     INTEGER NOT NULL CHECK (failed >= 0),
  created_by UUID NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  request_id TEXT CHECK (length(request_id) BETWEEN 1 AND 100),
  -- Applied: every row applied, was a duplicate or failed on its own. Rejected (atomic mode
  -- only, at least one row failed): nothing applied; the other rows are `not_applied`.
  CONSTRAINT repayment_batches_counts_add_up CHECK (
    (status = 'applied' AND applied + duplicates + failed = rows AND (NOT atomic OR failed = 0))
    OR (status = 'rejected' AND atomic AND applied = 0 AND failed > 0 AND duplicates + failed <= rows)
  )
);
CREATE INDEX repayment_batches_bank ON repayment_batches (bank_id, created_at);
CREATE TRIGGER repayment_batches_append_only BEFORE UPDATE OR DELETE ON repayment_batches FOR EACH ROW EXECUTE FUNCTION danbao_forbid_change();

CREATE TABLE repayment_batch_rows (
  batch_id       UUID NOT NULL REFERENCES repayment_batches (id) DEFERRABLE INITIALLY DEFERRED,
  row_no         INTEGER NOT NULL CHECK (row_no BETWEEN 1 AND 200000),
  -- As sent (may be empty or invalid on a failed row), bounded.
  bank_reference TEXT NOT NULL CHECK (length(bank_reference) <= 200),
  loan_id        UUID REFERENCES loans (id),
  outcome        TEXT NOT NULL CHECK (outcome IN ('applied', 'duplicate', 'failed', 'not_applied')),
  repayment_id   UUID REFERENCES repayments (id),
  error_code     TEXT CHECK (length(error_code) BETWEEN 1 AND 64),
  error_field    TEXT CHECK (length(error_field) BETWEEN 1 AND 64),
  error_message  TEXT CHECK (length(error_message) BETWEEN 1 AND 1000),
  PRIMARY KEY (batch_id, row_no),
  -- A failed row says why and moved nothing; any other row names its loan, and an applied or
  -- duplicate row its repayment.
  CONSTRAINT repayment_batch_rows_outcome_shape CHECK (
    (outcome = 'failed' AND error_code IS NOT NULL AND error_message IS NOT NULL AND repayment_id IS NULL)
    OR (outcome IN ('applied', 'duplicate') AND error_code IS NULL AND error_field IS NULL
        AND error_message IS NULL AND loan_id IS NOT NULL AND repayment_id IS NOT NULL)
    OR (outcome = 'not_applied' AND error_code IS NULL AND error_field IS NULL
        AND error_message IS NULL AND loan_id IS NOT NULL AND repayment_id IS NULL)
  )
);
CREATE INDEX repayment_batch_rows_failed ON repayment_batch_rows (batch_id, row_no) WHERE outcome = 'failed';
CREATE TRIGGER repayment_batch_rows_append_only BEFORE UPDATE OR DELETE ON repayment_batch_rows FOR EACH ROW EXECUTE FUNCTION danbao_forbid_change();
