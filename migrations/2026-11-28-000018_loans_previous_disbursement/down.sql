DROP INDEX loans_repeat;
DROP FUNCTION danbao_rebuild_prev_disbursed();
DROP VIEW loans_prev_disbursed_expected;
DROP TRIGGER loans_next_disbursed ON loans;
DROP FUNCTION danbao_loan_next_disbursed();
DROP TRIGGER loans_prev_disbursed ON loans;
DROP FUNCTION danbao_loan_prev_disbursed();
DROP FUNCTION danbao_prev_disbursed_on(UUID, DATE, UUID);
ALTER TABLE loans DROP COLUMN prev_disbursed_on;
