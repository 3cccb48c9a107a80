DROP TABLE write_offs;
DROP TABLE recoveries;
DROP TABLE compensation_claims;
DROP FUNCTION danbao_claim_decided_once();
CREATE OR REPLACE FUNCTION danbao_disbursement_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
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
ALTER TABLE loans DROP CONSTRAINT loans_end_shape, DROP COLUMN schedule_version;
DROP TRIGGER instalments_version ON instalments;
DROP FUNCTION danbao_instalment_version();
DROP TABLE loan_extensions;
ALTER TABLE instalments DROP CONSTRAINT instalments_pkey, DROP CONSTRAINT instalments_version_due_date;
ALTER TABLE instalments DROP COLUMN version;
ALTER TABLE instalments ADD PRIMARY KEY (loan_id, number), ADD CONSTRAINT instalments_loan_id_due_date_key UNIQUE (loan_id, due_date);
