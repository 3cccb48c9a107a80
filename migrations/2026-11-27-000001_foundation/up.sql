-- Foundation: regions, centres, banks, users, bank clients, policies, audit log.
-- Rule of the house: nothing is deleted. Corrections are new rows; the audit log and the
-- policies are never changed at all. Triggers enforce it so that no code path can forget.

CREATE FUNCTION danbao_forbid_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'rows of % are never deleted: record a correcting entry instead', TG_TABLE_NAME
    USING ERRCODE = 'restrict_violation';
END $$;

CREATE FUNCTION danbao_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'rows of % are append-only (% refused)', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'restrict_violation';
END $$;

-- GB/T 2260 codes: xx0000 province, xxyy00 city, otherwise county level. The parent is
-- implied by the code, and the CHECK keeps the tree consistent with it.
CREATE TABLE regions (
  code        TEXT PRIMARY KEY CHECK (code ~ '^[0-9]{6}$' AND left(code, 2) <> '00'),
  name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  parent_code TEXT REFERENCES regions (code),
  level       SMALLINT NOT NULL GENERATED ALWAYS AS (
                CASE WHEN right(code, 4) = '0000' THEN 1
                     WHEN right(code, 2) = '00' THEN 2
                     ELSE 3 END) STORED,
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT regions_parent_matches_code CHECK (
    (right(code, 4) = '0000' AND parent_code IS NULL)
    OR (right(code, 4) <> '0000' AND right(code, 2) = '00' AND parent_code = left(code, 2) || '0000')
    OR (right(code, 2) <> '00' AND parent_code = left(code, 4) || '00')
  )
);
CREATE INDEX regions_parent_code ON regions (parent_code);
CREATE TRIGGER regions_no_delete BEFORE DELETE ON regions FOR EACH ROW EXECUTE FUNCTION danbao_forbid_delete();

CREATE TABLE centres (
  id          UUID PRIMARY KEY,
  name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  region_code TEXT NOT NULL REFERENCES regions (code),
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX centres_region_code ON centres (region_code text_pattern_ops);
CREATE TRIGGER centres_no_delete BEFORE DELETE ON centres FOR EACH ROW EXECUTE FUNCTION danbao_forbid_delete();

CREATE TABLE banks (
  id          UUID PRIMARY KEY,
  code        TEXT NOT NULL UNIQUE CHECK (code ~ '^[A-Z0-9][A-Z0-9_-]{1,31}$'),
  name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TRIGGER banks_no_delete BEFORE DELETE ON banks FOR EACH ROW EXECUTE FUNCTION danbao_forbid_delete();

-- A user's scope follows from its role: clerk -> centre, bank -> bank, supervisor -> region.
CREATE TABLE users (
  id            UUID PRIMARY KEY,
  username      TEXT NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9_.-]{2,63}$'),
  display_name  TEXT NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
  password_hash TEXT NOT NULL CHECK (password_hash LIKE '$argon2%'),
  role          TEXT NOT NULL CHECK (role IN ('admin', 'clerk', 'bank', 'supervisor')),
  centre_id     UUID REFERENCES centres (id),
  bank_id       UUID REFERENCES banks (id),
  region_code   TEXT REFERENCES regions (code),
  active        BOOLEAN NOT NULL DEFAULT TRUE,
  created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT users_scope_matches_role CHECK (
    (role = 'admin' AND centre_id IS NULL AND bank_id IS NULL AND region_code IS NULL)
    OR (role = 'clerk' AND centre_id IS NOT NULL AND bank_id IS NULL AND region_code IS NULL)
    OR (role = 'bank' AND bank_id IS NOT NULL AND centre_id IS NULL AND region_code IS NULL)
    OR (role = 'supervisor' AND region_code IS NOT NULL AND centre_id IS NULL AND bank_id IS NULL)
  )
);
CREATE TRIGGER users_no_delete BEFORE DELETE ON users FOR EACH ROW EXECUTE FUNCTION danbao_forbid_delete();

-- Machine credentials of a bank's system. The secret is stored as an argon2 hash only.
CREATE TABLE bank_clients (
  id          UUID PRIMARY KEY,
  client_id   TEXT NOT NULL UNIQUE CHECK (client_id ~ '^[a-z0-9_-]{8,64}$'),
  secret_hash TEXT NOT NULL CHECK (secret_hash LIKE '$argon2%'),
  bank_id     UUID NOT NULL REFERENCES banks (id),
  name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  active      BOOLEAN NOT NULL DEFAULT TRUE,
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX bank_clients_bank_id ON bank_clients (bank_id);
CREATE TRIGGER bank_clients_no_delete BEFORE DELETE ON bank_clients FOR EACH ROW EXECUTE FUNCTION danbao_forbid_delete();

-- Effective-dated policy parameter sets. A loan keeps the policy it was approved under, so a
-- policy is never changed: a new rule is a new row with a later effective_from.
CREATE TABLE policies (
  id                                UUID PRIMARY KEY,
  code                              TEXT NOT NULL UNIQUE CHECK (length(code) BETWEEN 1 AND 64),
  name                              TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  region_code                       TEXT REFERENCES regions (code),
  effective_from                    DATE NOT NULL,
  individual_limit                  NUMERIC(18, 2) NOT NULL CHECK (individual_limit > 0),
  partnership_limit_multiple        NUMERIC(9, 6) NOT NULL CHECK (partnership_limit_multiple > 0),
  small_enterprise_limit            NUMERIC(18, 2) CHECK (small_enterprise_limit > 0),
  max_term_months                   INTEGER NOT NULL CHECK (max_term_months BETWEEN 1 AND 120),
  enterprise_max_term_months        INTEGER NOT NULL CHECK (enterprise_max_term_months BETWEEN 1 AND 120),
  extension_max_months              INTEGER NOT NULL CHECK (extension_max_months BETWEEN 0 AND 60),
  benchmark_rate                    NUMERIC(9, 6) NOT NULL CHECK (benchmark_rate BETWEEN 0 AND 1),
  max_rate_spread                   NUMERIC(9, 6) NOT NULL CHECK (max_rate_spread BETWEEN 0 AND 1),
  penalty_rate_multiplier           NUMERIC(9, 6) NOT NULL CHECK (penalty_rate_multiplier >= 1),
  leverage_multiple                 NUMERIC(9, 4) NOT NULL CHECK (leverage_multiple > 0),
  leverage_bonus_multiple           NUMERIC(9, 4) CHECK (leverage_bonus_multiple > 0),
  leverage_bonus_min_repayment_rate NUMERIC(9, 6) CHECK (leverage_bonus_min_repayment_rate BETWEEN 0 AND 1),
  waiver_limit                      NUMERIC(18, 2) NOT NULL CHECK (waiver_limit >= 0),
  compensation_overdue_days         INTEGER NOT NULL CHECK (compensation_overdue_days BETWEEN 1 AND 3650),
  compensation_pay_within_days      INTEGER NOT NULL CHECK (compensation_pay_within_days BETWEEN 1 AND 3650),
  fund_share                        NUMERIC(9, 6) NOT NULL CHECK (fund_share BETWEEN 0 AND 1),
  bank_share                        NUMERIC(9, 6) NOT NULL CHECK (bank_share BETWEEN 0 AND 1),
  other_share                       NUMERIC(9, 6) NOT NULL CHECK (other_share BETWEEN 0 AND 1),
  subsidy_share_laid_off            NUMERIC(9, 6) NOT NULL CHECK (subsidy_share_laid_off BETWEEN 0 AND 1),
  subsidy_share_registered_unemployed NUMERIC(9, 6) NOT NULL CHECK (subsidy_share_registered_unemployed BETWEEN 0 AND 1),
  subsidy_share_graduate            NUMERIC(9, 6) NOT NULL CHECK (subsidy_share_graduate BETWEEN 0 AND 1),
  subsidy_share_demobilised_soldier NUMERIC(9, 6) NOT NULL CHECK (subsidy_share_demobilised_soldier BETWEEN 0 AND 1),
  subsidy_share_returning_migrant   NUMERIC(9, 6) NOT NULL CHECK (subsidy_share_returning_migrant BETWEEN 0 AND 1),
  subsidy_share_disabled            NUMERIC(9, 6) NOT NULL CHECK (subsidy_share_disabled BETWEEN 0 AND 1),
  subsidy_share_small_enterprise    NUMERIC(9, 6) NOT NULL CHECK (subsidy_share_small_enterprise BETWEEN 0 AND 1),
  grace_days                        INTEGER NOT NULL CHECK (grace_days BETWEEN 0 AND 365),
  bank_stop_overdue_ratio           NUMERIC(9, 6) NOT NULL CHECK (bank_stop_overdue_ratio BETWEEN 0 AND 1),
  reward_share                      NUMERIC(9, 6) NOT NULL CHECK (reward_share BETWEEN 0 AND 1),
  reward_min_repayment_rate         NUMERIC(9, 6) NOT NULL CHECK (reward_min_repayment_rate BETWEEN 0 AND 1),
  min_age                           INTEGER NOT NULL CHECK (min_age BETWEEN 0 AND 150),
  max_age                           INTEGER NOT NULL CHECK (max_age BETWEEN 0 AND 150),
  certificate_required              BOOLEAN NOT NULL,
  created_at                        TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT policies_shares_sum_to_one CHECK (fund_share + bank_share + other_share = 1),
  CONSTRAINT policies_age_range CHECK (min_age < max_age),
  CONSTRAINT policies_bonus_pair CHECK ((leverage_bonus_multiple IS NULL) = (leverage_bonus_min_repayment_rate IS NULL))
);
CREATE INDEX policies_effective ON policies (region_code, effective_from);
CREATE TRIGGER policies_append_only BEFORE UPDATE OR DELETE ON policies FOR EACH ROW EXECUTE FUNCTION danbao_forbid_change();

-- Who did what, when, from which request. Written in the same transaction as the change.
CREATE TABLE audit_events (
  id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  occurred_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
  actor_kind  TEXT NOT NULL CHECK (actor_kind IN ('user', 'client', 'system')),
  actor_id    UUID,
  actor_name  TEXT NOT NULL,
  actor_role  TEXT NOT NULL,
  action      TEXT NOT NULL CHECK (action ~ '^[a-z_.]{3,64}$'),
  entity_type TEXT NOT NULL,
  entity_id   TEXT NOT NULL,
  region_code TEXT,
  request_id  TEXT,
  detail      JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_events_entity ON audit_events (entity_type, entity_id);
CREATE INDEX audit_events_region ON audit_events (region_code text_pattern_ops, id);
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events FOR EACH ROW EXECUTE FUNCTION danbao_forbid_change();
