DROP TABLE loans;
DROP TABLE borrowers;
DROP TRIGGER credit_communities_revoke_once ON credit_communities;
DROP FUNCTION danbao_revoke_once();
DROP TABLE credit_communities;
DROP TABLE fund_ledger_entries;
DROP TABLE funds;
