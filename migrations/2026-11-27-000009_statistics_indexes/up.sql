-- Indexes for the statistics' scans that would otherwise read a loan book's whole history.
-- Overdue on an as-of date: instalments never paid, and instalments paid late (after the
-- as-of date). Both are a small share of a history where most instalments are paid on time.
CREATE INDEX instalment_facts_unpaid ON instalment_facts (due_date) WHERE paid_on IS NULL;
CREATE INDEX instalment_facts_paid_late ON instalment_facts (paid_on) WHERE paid_on > due_date;
-- The count-based repayment rate: loans whose last instalment falls due in the period.
CREATE INDEX loans_maturity ON loans (maturity_date) WHERE disbursed_on IS NOT NULL;
