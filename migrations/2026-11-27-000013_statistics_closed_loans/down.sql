CREATE OR REPLACE FUNCTION danbao_rebuild_statistics() RETURNS VOID LANGUAGE sql AS $$
  SELECT danbao_rebuild_stat_due();
  SELECT danbao_rebuild_stat_stock();
$$;
DROP VIEW instalment_facts_closed_wrong;
DROP INDEX instalment_facts_unpaid_closed;
DROP INDEX instalment_facts_unpaid_open;
CREATE INDEX instalment_facts_unpaid ON instalment_facts (due_date) WHERE paid_on IS NULL;
DROP TRIGGER loans_closed_on ON loans;
DROP FUNCTION danbao_loan_closed_on();
DROP TRIGGER instalment_facts_closed_on_update ON instalment_facts;
DROP TRIGGER instalment_facts_closed_on_insert ON instalment_facts;
DROP FUNCTION danbao_facts_closed_on();
ALTER TABLE instalment_facts DROP COLUMN closed_on;
