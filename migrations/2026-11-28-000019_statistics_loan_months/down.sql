DROP FUNCTION danbao_rebuild_loan_months();
DROP VIEW stat_loan_months_expected;
DROP TRIGGER loans_no_truncate ON loans;
DROP TRIGGER loans_stat_months_update ON loans;
DROP TRIGGER loans_stat_months_insert ON loans;
DROP FUNCTION danbao_stat_loan_months();
DROP FUNCTION danbao_stat_loan_change(NUMERIC, INT, BOOLEAN, DATE, DATE, NUMERIC, INT, BOOLEAN, DATE, DATE);
DROP FUNCTION danbao_stat_loan_events(NUMERIC, INT, BOOLEAN, DATE, DATE);
DROP TABLE stat_loan_months;
