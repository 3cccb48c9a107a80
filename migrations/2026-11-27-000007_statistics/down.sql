DROP TABLE targets;
DROP TABLE principal_payments;
DROP TABLE instalment_facts;
DROP TRIGGER loans_placement ON loans;
DROP FUNCTION danbao_loan_placement();
DROP INDEX loans_disbursed_on;
DROP INDEX loans_region;
ALTER TABLE loans DROP CONSTRAINT loans_category_check, DROP COLUMN category, DROP COLUMN region_code;
