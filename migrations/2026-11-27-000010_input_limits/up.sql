-- Input limits the API checks, as constraints (issue 8): free text is printable (no control
-- characters, as Rust's char::is_control), business dates are not before 1990-01-01, a
-- policy takes effect between 1990-01-01 and 2200-12-31 for borrowers aged 16 to 100, a
-- small enterprise has at most 100,000 employees, and a counter-guarantee has the shape its
-- kind allows. The column checks keep their names (<table>_<column>_check), so a violation
-- still names the column.

CREATE FUNCTION danbao_printable(t TEXT) RETURNS BOOLEAN LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT t !~ '[\x01-\x1f\x7f-\x9f]' $$;
ALTER TABLE regions DROP CONSTRAINT regions_name_check,
  ADD CONSTRAINT regions_name_check CHECK (length(name) BETWEEN 1 AND 100 AND danbao_printable(name));
ALTER TABLE centres DROP CONSTRAINT centres_name_check,
  ADD CONSTRAINT centres_name_check CHECK (length(name) BETWEEN 1 AND 200 AND danbao_printable(name));
ALTER TABLE banks DROP CONSTRAINT banks_name_check,
  ADD CONSTRAINT banks_name_check CHECK (length(name) BETWEEN 1 AND 200 AND danbao_printable(name));
ALTER TABLE users DROP CONSTRAINT users_display_name_check,
  ADD CONSTRAINT users_display_name_check CHECK (length(display_name) BETWEEN 1 AND 200 AND danbao_printable(display_name));
ALTER TABLE bank_clients DROP CONSTRAINT bank_clients_name_check,
  ADD CONSTRAINT bank_clients_name_check CHECK (length(name) BETWEEN 1 AND 200 AND danbao_printable(name));
ALTER TABLE policies DROP CONSTRAINT policies_code_check,
  ADD CONSTRAINT policies_code_check CHECK (length(code) BETWEEN 1 AND 64 AND danbao_printable(code));
ALTER TABLE policies DROP CONSTRAINT policies_name_check,
  ADD CONSTRAINT policies_name_check CHECK (length(name) BETWEEN 1 AND 200 AND danbao_printable(name));
ALTER TABLE funds DROP CONSTRAINT funds_name_check,
  ADD CONSTRAINT funds_name_check CHECK (length(name) BETWEEN 1 AND 200 AND danbao_printable(name));
ALTER TABLE funds DROP CONSTRAINT funds_bank_account_check,
  ADD CONSTRAINT funds_bank_account_check CHECK (length(bank_account) BETWEEN 1 AND 64 AND danbao_printable(bank_account));
ALTER TABLE fund_ledger_entries DROP CONSTRAINT fund_ledger_entries_reference_check,
  ADD CONSTRAINT fund_ledger_entries_reference_check CHECK (length(reference) <= 200 AND danbao_printable(reference));
ALTER TABLE credit_communities DROP CONSTRAINT credit_communities_name_check,
  ADD CONSTRAINT credit_communities_name_check CHECK (length(name) BETWEEN 1 AND 200 AND danbao_printable(name));
ALTER TABLE credit_communities DROP CONSTRAINT credit_communities_revocation_reason_check,
  ADD CONSTRAINT credit_communities_revocation_reason_check CHECK (length(revocation_reason) BETWEEN 1 AND 500 AND danbao_printable(revocation_reason));
ALTER TABLE borrowers DROP CONSTRAINT borrowers_name_check,
  ADD CONSTRAINT borrowers_name_check CHECK (length(name) BETWEEN 1 AND 200 AND danbao_printable(name));
ALTER TABLE borrowers DROP CONSTRAINT borrowers_employment_certificate_no_check,
  ADD CONSTRAINT borrowers_employment_certificate_no_check CHECK (length(employment_certificate_no) BETWEEN 1 AND 64 AND danbao_printable(employment_certificate_no));
ALTER TABLE loans DROP CONSTRAINT loans_purpose_check,
  ADD CONSTRAINT loans_purpose_check CHECK (length(purpose) BETWEEN 1 AND 500 AND danbao_printable(purpose));
ALTER TABLE loans DROP CONSTRAINT loans_decision_reason_check,
  ADD CONSTRAINT loans_decision_reason_check CHECK (length(decision_reason) BETWEEN 1 AND 500 AND danbao_printable(decision_reason));
ALTER TABLE loans DROP CONSTRAINT loans_bank_account_no_check,
  ADD CONSTRAINT loans_bank_account_no_check CHECK (length(bank_account_no) BETWEEN 1 AND 64 AND danbao_printable(bank_account_no));
ALTER TABLE repayments DROP CONSTRAINT repayments_bank_reference_check,
  ADD CONSTRAINT repayments_bank_reference_check CHECK (length(bank_reference) BETWEEN 1 AND 64 AND danbao_printable(bank_reference));
ALTER TABLE repayment_reversals DROP CONSTRAINT repayment_reversals_reason_check,
  ADD CONSTRAINT repayment_reversals_reason_check CHECK (length(reason) BETWEEN 1 AND 500 AND danbao_printable(reason));
ALTER TABLE loan_extensions DROP CONSTRAINT loan_extensions_reason_check,
  ADD CONSTRAINT loan_extensions_reason_check CHECK (length(reason) BETWEEN 1 AND 500 AND danbao_printable(reason));
ALTER TABLE recoveries DROP CONSTRAINT recoveries_reference_check,
  ADD CONSTRAINT recoveries_reference_check CHECK (length(reference) BETWEEN 1 AND 64 AND danbao_printable(reference));
ALTER TABLE write_offs DROP CONSTRAINT write_offs_reason_check,
  ADD CONSTRAINT write_offs_reason_check CHECK (length(reason) BETWEEN 1 AND 500 AND danbao_printable(reason));

ALTER TABLE loans ADD CONSTRAINT loans_applied_on_check CHECK (applied_on >= DATE '1990-01-01');
ALTER TABLE credit_communities ADD CONSTRAINT credit_communities_certified_on_check CHECK (certified_on >= DATE '1990-01-01');
ALTER TABLE fund_ledger_entries ADD CONSTRAINT fund_ledger_entries_value_date_check CHECK (value_date >= DATE '1990-01-01');
ALTER TABLE repayments ADD CONSTRAINT repayments_value_date_check CHECK (value_date >= DATE '1990-01-01');
ALTER TABLE repayment_reversals ADD CONSTRAINT repayment_reversals_value_date_check CHECK (value_date >= DATE '1990-01-01');
ALTER TABLE loan_extensions ADD CONSTRAINT loan_extensions_agreed_on_check CHECK (agreed_on >= DATE '1990-01-01');
ALTER TABLE compensation_claims ADD CONSTRAINT compensation_claims_filed_on_check CHECK (filed_on >= DATE '1990-01-01');
ALTER TABLE recoveries ADD CONSTRAINT recoveries_value_date_check CHECK (value_date >= DATE '1990-01-01');
ALTER TABLE write_offs ADD CONSTRAINT write_offs_written_off_on_check CHECK (written_off_on >= DATE '1990-01-01');
ALTER TABLE policies ADD CONSTRAINT policies_effective_from_check
  CHECK (effective_from BETWEEN DATE '1990-01-01' AND DATE '2200-12-31'),
  DROP CONSTRAINT policies_min_age_check,
  ADD CONSTRAINT policies_min_age_check CHECK (min_age BETWEEN 16 AND 100),
  DROP CONSTRAINT policies_max_age_check,
  ADD CONSTRAINT policies_max_age_check CHECK (max_age BETWEEN 16 AND 100);

ALTER TABLE borrowers DROP CONSTRAINT borrowers_employees_check,
  ADD CONSTRAINT borrowers_employees_check CHECK (employees BETWEEN 0 AND 100000),
  DROP CONSTRAINT borrowers_eligible_employees_check,
  ADD CONSTRAINT borrowers_eligible_employees_check CHECK (eligible_employees BETWEEN 0 AND 100000);

-- As stored: a guarantor's name (its national id kept masked and encrypted), a description,
-- a group's size, or nothing for the waiver.
ALTER TABLE loans ADD CONSTRAINT loans_counter_guarantee_check CHECK (
  CASE counter_guarantee ->> 'kind'
    WHEN 'guarantor' THEN length(btrim(counter_guarantee ->> 'name')) BETWEEN 1 AND 100
      AND danbao_printable(counter_guarantee ->> 'name')
    WHEN 'joint_guarantee_group' THEN jsonb_typeof(counter_guarantee -> 'members') = 'number'
      AND (counter_guarantee ->> 'members')::numeric BETWEEN 2 AND 100
    WHEN 'mortgage' THEN length(btrim(counter_guarantee ->> 'description')) BETWEEN 1 AND 500
      AND danbao_printable(counter_guarantee ->> 'description')
    WHEN 'pledge' THEN length(btrim(counter_guarantee ->> 'description')) BETWEEN 1 AND 500
      AND danbao_printable(counter_guarantee ->> 'description')
    WHEN 'credit_community_waiver' THEN TRUE
    ELSE FALSE
  END
);
