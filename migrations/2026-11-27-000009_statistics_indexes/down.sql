DROP INDEX loans_maturity;
DROP INDEX instalment_facts_paid_late;
DROP INDEX instalment_facts_unpaid;
