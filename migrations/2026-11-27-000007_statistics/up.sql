-- Statistics: facts kept beside the books so that supervisors' figures are sums, not replays.

-- Where a loan belongs and whom it helps never changes: kept on the loan, for grouping.
ALTER TABLE loans ADD COLUMN region_code TEXT REFERENCES regions (code), ADD COLUMN category TEXT;
UPDATE loans l SET region_code = c.region_code FROM centres c WHERE c.id = l.centre_id;
UPDATE loans l SET category = b.category FROM borrowers b WHERE b.id = l.borrower_id;
ALTER TABLE loans ALTER COLUMN region_code SET NOT NULL, ALTER COLUMN category SET NOT NULL,
  ADD CONSTRAINT loans_category_check CHECK (category IN ('laid_off', 'registered_unemployed', 'graduate',
    'demobilised_soldier', 'returning_migrant', 'disabled', 'small_enterprise'));
CREATE INDEX loans_region ON loans (region_code text_pattern_ops);
CREATE INDEX loans_disbursed_on ON loans (disbursed_on) WHERE disbursed_on IS NOT NULL;

-- The loan's region and category are its centre's and its borrower's.
CREATE FUNCTION danbao_loan_placement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.region_code IS DISTINCT FROM (SELECT region_code FROM centres WHERE id = NEW.centre_id)
     OR NEW.category IS DISTINCT FROM (SELECT category FROM borrowers WHERE id = NEW.borrower_id) THEN
    RAISE EXCEPTION 'a loan''s region and category are its centre''s and its borrower''s'
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER loans_placement BEFORE INSERT OR UPDATE OF region_code, category, centre_id, borrower_id ON loans
  FOR EACH ROW EXECUTE FUNCTION danbao_loan_placement();

-- Derived, not records: each disbursed loan's current instalments as its position computes
-- them from the schedule and the repayments that count (the day each was paid in full, the
-- subsidy it earns if paid on time), and the principal paid to each instalment by value date.
-- They are rewritten for the loan in the same transaction as every write that changes its
-- position, and `danbao verify` recomputes them.
CREATE TABLE instalment_facts (
  loan_id   UUID NOT NULL REFERENCES loans (id),
  number    INTEGER NOT NULL CHECK (number BETWEEN 1 AND 601),
  due_date  DATE NOT NULL,
  principal NUMERIC(18, 2) NOT NULL CHECK (principal >= 0),
  interest  NUMERIC(18, 2) NOT NULL CHECK (interest >= 0),
  -- Interest subsidy if paid on time (0 for loans that are not micro-profit and in extension).
  subsidy   NUMERIC(18, 2) NOT NULL CHECK (subsidy >= 0 AND subsidy <= interest),
  extended  BOOLEAN NOT NULL,
  paid_on   DATE,
  PRIMARY KEY (loan_id, number)
);
CREATE INDEX instalment_facts_due ON instalment_facts (due_date);

CREATE TABLE principal_payments (
  loan_id    UUID NOT NULL REFERENCES loans (id),
  number     INTEGER NOT NULL,
  value_date DATE NOT NULL,
  principal  NUMERIC(18, 2) NOT NULL CHECK (principal > 0),
  PRIMARY KEY (loan_id, number, value_date),
  FOREIGN KEY (loan_id, number) REFERENCES instalment_facts (loan_id, number) DEFERRABLE INITIALLY DEFERRED
);

-- A region's plan for a year, per measure. Corrections are new rows; the latest counts.
CREATE TABLE targets (
  id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  region_code TEXT NOT NULL REFERENCES regions (code),
  year        INTEGER NOT NULL CHECK (year BETWEEN 1990 AND 2200),
  measure     TEXT NOT NULL CHECK (measure IN ('issued_amount', 'new_fund_money', 'new_credit_communities',
                'borrowers_helped', 'jobs_created', 'repayment_rate')),
  value       NUMERIC(18, 2) NOT NULL CHECK (value > 0),
  set_by      UUID NOT NULL REFERENCES users (id),
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT targets_rate_is_percent CHECK (measure <> 'repayment_rate' OR value <= 100)
);
CREATE INDEX targets_region_year ON targets (region_code, year, measure, id DESC);
CREATE TRIGGER targets_append_only BEFORE UPDATE OR DELETE ON targets FOR EACH ROW EXECUTE FUNCTION danbao_forbid_change();
