DROP TRIGGER repayment_reversals_fit_repayment ON repayment_reversals;
DROP FUNCTION danbao_reversals_fit_repayments();
DROP INDEX repayment_reversals_loan;
ALTER TABLE repayment_reversals DROP COLUMN loan_id;
