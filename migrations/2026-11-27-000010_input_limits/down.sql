-- Back to the checks of the earlier migrations.
ALTER TABLE regions DROP CONSTRAINT regions_name_check,
  ADD CONSTRAINT regions_name_check CHECK (length(name) BETWEEN 1 AND 100);
ALTER TABLE centres DROP CONSTRAINT centres_name_check,
  ADD CONSTRAINT centres_name_check CHECK (length(name) BETWEEN 1 AND 200);
ALTER TABLE banks DROP CONSTRAINT banks_name_check,
  ADD CONSTRAINT banks_name_check CHECK (length(name) BETWEEN 1 AND 200);
ALTER TABLE users DROP CONSTRAINT users_display_name_check,
  ADD CONSTRAINT users_display_name_check CHECK (length(display_name) BETWEEN 1 AND 200);
ALTER TABLE bank_clients DROP CONSTRAINT bank_clients_name_check,
  ADD CONSTRAINT bank_clients_name_check CHECK (length(name) BETWEEN 1 AND 200);
ALTER TABLE policies DROP CONSTRAINT policies_code_check,
  ADD CONSTRAINT policies_code_check CHECK (length(code) BETWEEN 1 AND 64);
ALTER TABLE policies DROP CONSTRAINT policies_name_check,
  ADD CONSTRAINT policies_name_check CHECK (length(name) BETWEEN 1 AND 200);
ALTER TABLE funds DROP CONSTRAINT funds_name_check,
  ADD CONSTRAINT funds_name_check CHECK (length(name) BETWEEN 1 AND 200);
ALTER TABLE funds DROP CONSTRAINT funds_bank_account_check,
  ADD CONSTRAINT funds_bank_account_check CHECK (length(bank_account) BETWEEN 1 AND 64);
ALTER TABLE fund_ledger_entries DROP CONSTRAINT fund_ledger_entries_reference_check,
  ADD CONSTRAINT fund_ledger_entries_reference_check CHECK (length(reference) <= 200);
ALTER TABLE credit_communities DROP CONSTRAINT credit_communities_name_check,
  ADD CONSTRAINT credit_communities_name_check CHECK (length(name) BETWEEN 1 AND 200);
ALTER TABLE credit_communities DROP CONSTRAINT credit_communities_revocation_reason_check,
  ADD CONSTRAINT credit_communities_revocation_reason_check CHECK (length(revocation_reason) BETWEEN 1 AND 500);
ALTER TABLE borrowers DROP CONSTRAINT borrowers_name_check,
  ADD CONSTRAINT borrowers_name_check CHECK (length(name) BETWEEN 1 AND 200);
ALTER TABLE borrowers DROP CONSTRAINT borrowers_employment_certificate_no_check,
  ADD CONSTRAINT borrowers_employment_certificate_no_check CHECK (length(employment_certificate_no) BETWEEN 1 AND 64);
ALTER TABLE loans DROP CONSTRAINT loans_purpose_check,
  ADD CONSTRAINT loans_purpose_check CHECK (length(purpose) BETWEEN 1 AND 500);
ALTER TABLE loans DROP CONSTRAINT loans_decision_reason_check,
  ADD CONSTRAINT loans_decision_reason_check CHECK (length(decision_reason) BETWEEN 1 AND 500);
ALTER TABLE loans DROP CONSTRAINT loans_bank_account_no_check,
  ADD CONSTRAINT loans_bank_account_no_check CHECK (length(bank_account_no) BETWEEN 1 AND 64);
ALTER TABLE repayments DROP CONSTRAINT repayments_bank_reference_check,
  ADD CONSTRAINT repayments_bank_reference_check CHECK (length(bank_reference) BETWEEN 1 AND 64);
ALTER TABLE repayment_reversals DROP CONSTRAINT repayment_reversals_reason_check,
  ADD CONSTRAINT repayment_reversals_reason_check CHECK (length(reason) BETWEEN 1 AND 500);
ALTER TABLE loan_extensions DROP CONSTRAINT loan_extensions_reason_check,
  ADD CONSTRAINT loan_extensions_reason_check CHECK (length(reason) BETWEEN 1 AND 500);
ALTER TABLE recoveries DROP CONSTRAINT recoveries_reference_check,
  ADD CONSTRAINT recoveries_reference_check CHECK (length(reference) BETWEEN 1 AND 64);
ALTER TABLE write_offs DROP CONSTRAINT write_offs_reason_check,
  ADD CONSTRAINT write_offs_reason_check CHECK (length(reason) BETWEEN 1 AND 500);
ALTER TABLE loans DROP CONSTRAINT loans_applied_on_check;
ALTER TABLE credit_communities DROP CONSTRAINT credit_communities_certified_on_check;
ALTER TABLE fund_ledger_entries DROP CONSTRAINT fund_ledger_entries_value_date_check;
ALTER TABLE repayments DROP CONSTRAINT repayments_value_date_check;
ALTER TABLE repayment_reversals DROP CONSTRAINT repayment_reversals_value_date_check;
ALTER TABLE loan_extensions DROP CONSTRAINT loan_extensions_agreed_on_check;
ALTER TABLE compensation_claims DROP CONSTRAINT compensation_claims_filed_on_check;
ALTER TABLE recoveries DROP CONSTRAINT recoveries_value_date_check;
ALTER TABLE write_offs DROP CONSTRAINT write_offs_written_off_on_check;
ALTER TABLE policies DROP CONSTRAINT policies_effective_from_check,
  DROP CONSTRAINT policies_min_age_check,
  ADD CONSTRAINT policies_min_age_check CHECK (min_age BETWEEN 0 AND 150),
  DROP CONSTRAINT policies_max_age_check,
  ADD CONSTRAINT policies_max_age_check CHECK (max_age BETWEEN 0 AND 150);
ALTER TABLE borrowers DROP CONSTRAINT borrowers_employees_check,
  ADD CONSTRAINT borrowers_employees_check CHECK (employees >= 0),
  DROP CONSTRAINT borrowers_eligible_employees_check,
  ADD CONSTRAINT borrowers_eligible_employees_check CHECK (eligible_employees >= 0);
ALTER TABLE loans DROP CONSTRAINT loans_counter_guarantee_check;
DROP FUNCTION danbao_printable(TEXT);
