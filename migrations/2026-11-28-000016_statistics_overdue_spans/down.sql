DROP INDEX loans_disbursed_on;
CREATE INDEX loans_disbursed_on ON loans (disbursed_on) WHERE disbursed_on IS NOT NULL;
DROP INDEX loans_closed_maturity;
DROP INDEX loans_maturity;
CREATE INDEX loans_maturity ON loans (maturity_date) WHERE disbursed_on IS NOT NULL;
DROP INDEX instalment_facts_paid_late;
CREATE INDEX instalment_facts_paid_late ON instalment_facts (paid_on) WHERE paid_on > due_date;
DROP INDEX principal_payments_late;
CREATE INDEX principal_payments_late ON principal_payments (value_date) WHERE value_date > due_date;
CREATE OR REPLACE FUNCTION danbao_rebuild_statistics() RETURNS VOID LANGUAGE sql AS $$
  UPDATE instalment_facts f SET closed_on = l.released_on
  FROM loans l WHERE l.id = f.loan_id AND l.status IN ('compensated', 'written_off')
    AND f.closed_on IS DISTINCT FROM l.released_on;
  SELECT danbao_rebuild_stat_due();
  SELECT danbao_rebuild_stat_stock();
$$;
CREATE OR REPLACE FUNCTION danbao_loan_closed_on() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE instalment_facts SET closed_on = CASE WHEN NEW.status IN ('compensated', 'written_off') THEN NEW.released_on END
  WHERE loan_id = NEW.id;
  RETURN NULL;
END $$;
DROP VIEW overdue_spans_wrong;
DROP FUNCTION danbao_rebuild_overdue_spans();
DROP VIEW overdue_spans_expected;
DROP TABLE overdue_spans;
DROP FUNCTION danbao_overdue_spans_fit_loan();
DROP FUNCTION danbao_overdue_live(DATE, DATE, DATE);
