DROP FUNCTION danbao_rebuild_stat_due();
DROP VIEW stat_due_current;
DROP VIEW stat_due_expected;
DROP FUNCTION danbao_roll_up_stat_due();
DROP TRIGGER loans_cell_fixed ON loans;
DROP FUNCTION danbao_loan_cell_fixed();
DROP TRIGGER principal_payments_no_truncate ON principal_payments;
DROP TRIGGER instalment_facts_no_truncate ON instalment_facts;
DROP FUNCTION danbao_forbid_truncate();
DROP TRIGGER principal_payments_rollup_delete ON principal_payments;
DROP TRIGGER principal_payments_rollup_update ON principal_payments;
DROP TRIGGER principal_payments_rollup_insert ON principal_payments;
DROP TRIGGER instalment_facts_rollup_delete ON instalment_facts;
DROP TRIGGER instalment_facts_rollup_update ON instalment_facts;
DROP TRIGGER instalment_facts_rollup_insert ON instalment_facts;
DROP FUNCTION danbao_stat_due_payments();
DROP FUNCTION danbao_stat_due_facts();
DROP TABLE stat_due_deltas;
DROP TABLE stat_due_rollups;
DROP INDEX principal_payments_late;
ALTER TABLE principal_payments DROP CONSTRAINT principal_payments_instalment_fkey,
  ADD CONSTRAINT principal_payments_loan_id_number_fkey FOREIGN KEY (loan_id, number)
    REFERENCES instalment_facts (loan_id, number) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE instalment_facts DROP CONSTRAINT instalment_facts_number_due;
ALTER TABLE principal_payments DROP COLUMN due_date;
