DROP VIEW repayment_allocations_current;
DROP TABLE repayment_allocations;
DROP TABLE repayment_reversals;
DROP TRIGGER repayments_fit_loan ON repayments;
DROP FUNCTION danbao_repayment_fits_loan();
DROP TABLE repayments;
DROP TABLE instalments;
DROP TRIGGER loans_disbursement_fixed ON loans;
DROP FUNCTION danbao_disbursement_fixed();
DROP INDEX loans_bank_account_no;
ALTER TABLE loans
  DROP CONSTRAINT loans_settlement_shape,
  DROP CONSTRAINT loans_disbursement_shape,
  DROP COLUMN disbursed_by,
  DROP COLUMN bank_account_no,
  DROP COLUMN maturity_date,
  DROP COLUMN disbursed_on;
