-- Extension (展期), compensation (代偿), recovery (追偿) and write-off (核销).

-- An extension re-schedules the loan once: the stored schedule gains a second version, and the
-- loan says which version is current. Version 1 is the schedule fixed at disbursement.
ALTER TABLE instalments DROP CONSTRAINT instalments_pkey, DROP CONSTRAINT instalments_loan_id_due_date_key;
ALTER TABLE instalments ADD COLUMN version SMALLINT NOT NULL DEFAULT 1 CHECK (version IN (1, 2));
ALTER TABLE instalments ADD PRIMARY KEY (loan_id, version, number),
  ADD CONSTRAINT instalments_version_due_date UNIQUE (loan_id, version, due_date);

CREATE TABLE loan_extensions (
  loan_id               UUID PRIMARY KEY REFERENCES loans (id),
  agreed_on             DATE NOT NULL,
  months                INTEGER NOT NULL CHECK (months BETWEEN 1 AND 120),
  old_maturity          DATE NOT NULL,
  new_maturity          DATE NOT NULL,
  -- This instalment and any later one are in the extension period: no interest subsidy.
  first_extended        INTEGER NOT NULL CHECK (first_extended BETWEEN 2 AND 601),
  rescheduled_principal NUMERIC(18, 2) NOT NULL CHECK (rescheduled_principal > 0),
  reason                TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
  created_by            UUID NOT NULL REFERENCES users (id),
  created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT loan_extensions_dates CHECK (agreed_on <= old_maturity AND new_maturity > old_maturity)
);
CREATE TRIGGER loan_extensions_append_only BEFORE UPDATE OR DELETE ON loan_extensions FOR EACH ROW EXECUTE FUNCTION danbao_forbid_change();

-- A second schedule only for an extended loan.
CREATE FUNCTION danbao_instalment_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.version = 2 AND NOT EXISTS (SELECT 1 FROM loan_extensions WHERE loan_id = NEW.loan_id) THEN
    RAISE EXCEPTION 'only an extended loan has a second schedule' USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER instalments_version BEFORE INSERT ON instalments FOR EACH ROW EXECUTE FUNCTION danbao_instalment_version();

ALTER TABLE loans
  ADD COLUMN schedule_version SMALLINT NOT NULL DEFAULT 1 CHECK (schedule_version IN (1, 2)),
  ADD CONSTRAINT loans_schedule_version_disbursed CHECK (schedule_version = 1 OR disbursed_on IS NOT NULL),
  -- A compensated or written-off loan no longer counts against its fund's headroom.
  ADD CONSTRAINT loans_end_shape CHECK (status NOT IN ('compensated', 'written_off') OR released_on IS NOT NULL);

-- The disbursement stays fixed; only the one extension moves the maturity and the schedule.
CREATE OR REPLACE FUNCTION danbao_disbursement_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.disbursed_on IS NOT NULL AND (
       NEW.disbursed_on IS DISTINCT FROM OLD.disbursed_on
       OR NEW.bank_account_no IS DISTINCT FROM OLD.bank_account_no
       OR NEW.disbursed_by IS DISTINCT FROM OLD.disbursed_by) THEN
    RAISE EXCEPTION 'a loan''s disbursement is append-only'
      USING ERRCODE = 'restrict_violation';
  END IF;
  IF OLD.disbursed_on IS NOT NULL AND (
       NEW.maturity_date IS DISTINCT FROM OLD.maturity_date
       OR NEW.schedule_version <> OLD.schedule_version) THEN
    IF NOT (OLD.schedule_version = 1 AND NEW.schedule_version = 2
            AND NEW.maturity_date = (SELECT new_maturity FROM loan_extensions WHERE loan_id = NEW.id)) THEN
      RAISE EXCEPTION 'only the loan''s one extension moves its maturity'
        USING ERRCODE = 'restrict_violation';
    END IF;
  END IF;
  RETURN NEW;
END $$;

-- A bank's claim on the fund for a defaulted loan; one per loan. A clerk approves it (not the
-- clerk who entered the loan, not the filer): the fund pays its covered share, a ledger entry.
CREATE TABLE compensation_claims (
  id                    UUID PRIMARY KEY,
  loan_id               UUID NOT NULL REFERENCES loans (id),
  bank_id               UUID NOT NULL REFERENCES banks (id),
  fund_id               UUID NOT NULL REFERENCES funds (id),
  filed_on              DATE NOT NULL,
  days_past_due         INTEGER NOT NULL CHECK (days_past_due > 0),
  outstanding_principal NUMERIC(18, 2) NOT NULL CHECK (outstanding_principal > 0),
  overdue_interest      NUMERIC(18, 2) NOT NULL CHECK (overdue_interest >= 0),
  fund_share            NUMERIC(9, 6) NOT NULL CHECK (fund_share > 0 AND fund_share <= 1),
  claimed_amount        NUMERIC(18, 2) NOT NULL CHECK (claimed_amount > 0),
  -- A bank user or a bank's API client.
  filed_by              UUID NOT NULL,
  created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
  status                TEXT NOT NULL DEFAULT 'filed' CHECK (status IN ('filed', 'approved')),
  approved_on           DATE,
  approved_by           UUID REFERENCES users (id),
  paid_amount           NUMERIC(18, 2) CHECK (paid_amount > 0),
  ledger_entry_id       BIGINT REFERENCES fund_ledger_entries (id),
  CONSTRAINT compensation_claims_one_per_loan UNIQUE (loan_id),
  CONSTRAINT compensation_claims_decision_shape CHECK (
    (status = 'filed' AND approved_on IS NULL AND approved_by IS NULL AND paid_amount IS NULL AND ledger_entry_id IS NULL)
    OR (status = 'approved' AND approved_on >= filed_on AND approved_by IS NOT NULL AND paid_amount IS NOT NULL
        AND ledger_entry_id IS NOT NULL)
  ),
  CONSTRAINT compensation_claims_four_eyes CHECK (approved_by IS NULL OR approved_by <> filed_by)
);
CREATE INDEX compensation_claims_bank ON compensation_claims (bank_id, id);
CREATE INDEX compensation_claims_fund ON compensation_claims (fund_id, id);
CREATE TRIGGER compensation_claims_no_delete BEFORE DELETE ON compensation_claims FOR EACH ROW EXECUTE FUNCTION danbao_forbid_delete();

-- A claim changes once, from filed to approved, by someone other than the loan's entrant.
CREATE FUNCTION danbao_claim_decided_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status <> 'filed'
     OR ROW(NEW.id, NEW.loan_id, NEW.bank_id, NEW.fund_id, NEW.filed_on, NEW.days_past_due,
            NEW.outstanding_principal, NEW.overdue_interest, NEW.fund_share, NEW.claimed_amount,
            NEW.filed_by, NEW.created_at)
        IS DISTINCT FROM
        ROW(OLD.id, OLD.loan_id, OLD.bank_id, OLD.fund_id, OLD.filed_on, OLD.days_past_due,
            OLD.outstanding_principal, OLD.overdue_interest, OLD.fund_share, OLD.claimed_amount,
            OLD.filed_by, OLD.created_at) THEN
    RAISE EXCEPTION 'a compensation claim is only ever changed by its one approval'
      USING ERRCODE = 'restrict_violation';
  END IF;
  IF NEW.approved_by = (SELECT entered_by FROM loans WHERE id = NEW.loan_id) THEN
    RAISE EXCEPTION 'the clerk who entered the loan may not approve its compensation'
      USING ERRCODE = 'check_violation', CONSTRAINT = 'compensation_claims_four_eyes';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER compensation_claims_decided_once BEFORE UPDATE ON compensation_claims FOR EACH ROW EXECUTE FUNCTION danbao_claim_decided_once();

-- Money recovered after compensation: the fund's share goes back to it (a ledger entry).
CREATE TABLE recoveries (
  id              UUID PRIMARY KEY,
  loan_id         UUID NOT NULL REFERENCES loans (id),
  claim_id        UUID NOT NULL REFERENCES compensation_claims (id),
  value_date      DATE NOT NULL,
  amount          NUMERIC(18, 2) NOT NULL CHECK (amount > 0),
  to_fund         NUMERIC(18, 2) NOT NULL CHECK (to_fund >= 0 AND to_fund <= amount),
  reference       TEXT NOT NULL CHECK (length(reference) BETWEEN 1 AND 64),
  ledger_entry_id BIGINT REFERENCES fund_ledger_entries (id),
  -- A clerk, a bank user or a bank's API client.
  created_by      UUID NOT NULL,
  created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT recoveries_reference_key UNIQUE (loan_id, reference),
  CONSTRAINT recoveries_ledger CHECK ((to_fund > 0) = (ledger_entry_id IS NOT NULL))
);
CREATE INDEX recoveries_loan ON recoveries (loan_id, value_date);
CREATE TRIGGER recoveries_append_only BEFORE UPDATE OR DELETE ON recoveries FOR EACH ROW EXECUTE FUNCTION danbao_forbid_change();

-- The end of a compensated loan: what the fund paid and did not get back is lost.
CREATE TABLE write_offs (
  loan_id           UUID PRIMARY KEY REFERENCES loans (id),
  claim_id          UUID NOT NULL REFERENCES compensation_claims (id),
  written_off_on    DATE NOT NULL,
  compensation_paid NUMERIC(18, 2) NOT NULL CHECK (compensation_paid > 0),
  recovered_to_fund NUMERIC(18, 2) NOT NULL CHECK (recovered_to_fund >= 0),
  loss              NUMERIC(18, 2) NOT NULL CHECK (loss >= 0),
  reason            TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
  created_by        UUID NOT NULL REFERENCES users (id),
  created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT write_offs_loss_adds_up CHECK (loss = compensation_paid - recovered_to_fund)
);
CREATE TRIGGER write_offs_append_only BEFORE UPDATE OR DELETE ON write_offs FOR EACH ROW EXECUTE FUNCTION danbao_forbid_change();
