DROP INDEX fund_ledger_value_date;
DROP VIEW fund_ledger_months_expected;
DROP TRIGGER fund_ledger_no_truncate ON fund_ledger_entries;
DROP TRIGGER fund_ledger_months ON fund_ledger_entries;
DROP FUNCTION danbao_fund_ledger_months();
DROP TABLE fund_ledger_months;
