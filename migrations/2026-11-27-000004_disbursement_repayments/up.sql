-- Disbursement, the fixed schedule, repayments and their reversals.
-- A loan is disbursed once: from then on it carries the disbursement date, its maturity and
-- the bank's own account number (unique per bank). The schedule is fixed on that date and
-- stored; repayments and reversals are append-only, a reversal is a correcting entry.

ALTER TABLE loans
  ADD COLUMN disbursed_on    DATE,
  ADD COLUMN maturity_date   DATE,
  ADD COLUMN bank_account_no TEXT CHECK (length(bank_account_no) BETWEEN 1 AND 64),
  ADD COLUMN disbursed_by    UUID,
  ADD CONSTRAINT loans_disbursement_shape CHECK (
    (status IN ('applied', 'approved', 'rejected', 'cancelled')
       AND disbursed_on IS NULL AND maturity_date IS NULL AND bank_account_no IS NULL AND disbursed_by IS NULL)
    OR (status IN ('active', 'settled', 'compensated', 'written_off')
       AND disbursed_on IS NOT NULL AND maturity_date IS NOT NULL AND bank_account_no IS NOT NULL
       AND disbursed_by IS NOT NULL AND disbursed_on >= approved_on AND maturity_date > disbursed_on)
  ),
  -- A settled loan has given its guarantee back; an active one has not.
  ADD CONSTRAINT loans_settlement_shape CHECK (
    (status <> 'settled' OR released_on IS NOT NULL)
    AND (status <> 'active' OR released_on IS NULL)
  );
CREATE UNIQUE INDEX loans_bank_account_no ON loans (bank_id, bank_account_no) WHERE bank_account_no IS NOT NULL;

-- Once disbursed, the disbursement never changes.
CREATE FUNCTION danbao_disbursement_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.disbursed_on IS NOT NULL AND (
       NEW.disbursed_on IS DISTINCT FROM OLD.disbursed_on
       OR NEW.maturity_date IS DISTINCT FROM OLD.maturity_date
       OR NEW.bank_account_no IS DISTINCT FROM OLD.bank_account_no
       OR NEW.disbursed_by IS DISTINCT FROM OLD.disbursed_by) THEN
    RAISE EXCEPTION 'a loan''s disbursement is append-only'
      USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER loans_disbursement_fixed BEFORE UPDATE ON loans FOR EACH ROW EXECUTE FUNCTION danbao_disbursement_fixed();

-- The schedule fixed at disbursement.
CREATE TABLE instalments (
  loan_id    UUID NOT NULL REFERENCES loans (id),
  number     INTEGER NOT NULL CHECK (number BETWEEN 1 AND 600),
  due_date   DATE NOT NULL,
  principal  NUMERIC(18, 2) NOT NULL CHECK (principal >= 0),
  interest   NUMERIC(18, 2) NOT NULL CHECK (interest >= 0),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (loan_id, number),
  UNIQUE (loan_id, due_date)
);
CREATE TRIGGER instalments_append_only BEFORE UPDATE OR DELETE ON instalments FOR EACH ROW EXECUTE FUNCTION danbao_forbid_change();

-- Money from the borrower as the bank reported it. `to_*` is where it went when booked
-- (a later backdated repayment or a reversal may move later repayments' allocation; the
-- position is always recomputed from all repayments that count).
CREATE TABLE repayments (
  id             UUID PRIMARY KEY,
  loan_id        UUID NOT NULL REFERENCES loans (id),
  bank_id        UUID NOT NULL REFERENCES banks (id),
  bank_reference TEXT NOT NULL CHECK (length(bank_reference) BETWEEN 1 AND 64),
  value_date     DATE NOT NULL,
  amount         NUMERIC(18, 2) NOT NULL CHECK (amount > 0),
  to_penalty     NUMERIC(18, 2) NOT NULL CHECK (to_penalty >= 0),
  to_interest    NUMERIC(18, 2) NOT NULL CHECK (to_interest >= 0),
  to_principal   NUMERIC(18, 2) NOT NULL CHECK (to_principal >= 0),
  created_by     UUID NOT NULL,
  created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT repayments_bank_reference_key UNIQUE (bank_id, bank_reference),
  CONSTRAINT repayments_allocation_adds_up CHECK (to_penalty + to_interest + to_principal = amount)
);
CREATE INDEX repayments_loan ON repayments (loan_id, value_date, created_at);
CREATE TRIGGER repayments_append_only BEFORE UPDATE OR DELETE ON repayments FOR EACH ROW EXECUTE FUNCTION danbao_forbid_change();

-- The repayment's bank must be the loan's bank, and its value date within the loan's life.
CREATE FUNCTION danbao_repayment_fits_loan() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE l loans%ROWTYPE;
BEGIN
  SELECT * INTO l FROM loans WHERE id = NEW.loan_id;
  IF l.bank_id <> NEW.bank_id OR l.disbursed_on IS NULL OR NEW.value_date < l.disbursed_on THEN
    RAISE EXCEPTION 'a repayment belongs to a disbursed loan of its bank, on or after the disbursement'
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER repayments_fit_loan BEFORE INSERT ON repayments FOR EACH ROW EXECUTE FUNCTION danbao_repayment_fits_loan();

-- A correcting entry: the repayment stays, and no longer counts.
CREATE TABLE repayment_reversals (
  repayment_id UUID PRIMARY KEY REFERENCES repayments (id),
  reason       TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
  value_date   DATE NOT NULL,
  created_by   UUID NOT NULL,
  created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TRIGGER repayment_reversals_append_only BEFORE UPDATE OR DELETE ON repayment_reversals FOR EACH ROW EXECUTE FUNCTION danbao_forbid_change();

-- Where each repayment's money goes now. A backdated repayment or a reversal can move the
-- allocation of other repayments of the loan (the oldest instalment is paid first), so every
-- write appends a row for each repayment whose allocation changed (the new one included);
-- a repayment's current allocation is its latest row. Thus, for every loan, the principal of
-- the current allocations of its non-reversed repayments is its principal repaid.
CREATE TABLE repayment_allocations (
  id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  repayment_id UUID NOT NULL REFERENCES repayments (id),
  loan_id      UUID NOT NULL REFERENCES loans (id),
  to_penalty   NUMERIC(18, 2) NOT NULL CHECK (to_penalty >= 0),
  to_interest  NUMERIC(18, 2) NOT NULL CHECK (to_interest >= 0),
  to_principal NUMERIC(18, 2) NOT NULL CHECK (to_principal >= 0),
  created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX repayment_allocations_loan ON repayment_allocations (loan_id, repayment_id, id);
CREATE TRIGGER repayment_allocations_append_only BEFORE UPDATE OR DELETE ON repayment_allocations FOR EACH ROW EXECUTE FUNCTION danbao_forbid_change();

-- The current allocation of every repayment.
CREATE VIEW repayment_allocations_current AS
  SELECT DISTINCT ON (repayment_id) repayment_id, loan_id, to_penalty, to_interest, to_principal
  FROM repayment_allocations
  ORDER BY repayment_id, id DESC;
