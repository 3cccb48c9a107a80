-- Guarantee lifecycle: funds and their ledger, credit communities, borrowers, loans.

-- A centre's guarantee fund. `balance` is the sum of its ledger and `outstanding_guaranteed`
-- the principal its approved, unsettled guarantees cover; both move only under a row lock on
-- the fund, in the same transaction as the entry or decision that moves them.
CREATE TABLE funds (
  id                     UUID PRIMARY KEY,
  centre_id              UUID NOT NULL REFERENCES centres (id),
  name                   TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  bank_account           TEXT CHECK (length(bank_account) BETWEEN 1 AND 64),
  balance                NUMERIC(18, 2) NOT NULL DEFAULT 0 CHECK (balance >= 0),
  outstanding_guaranteed NUMERIC(18, 2) NOT NULL DEFAULT 0 CHECK (outstanding_guaranteed >= 0),
  created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX funds_centre_id ON funds (centre_id);
CREATE TRIGGER funds_no_delete BEFORE DELETE ON funds FOR EACH ROW EXECUTE FUNCTION danbao_forbid_delete();

-- Every movement of fund money, signed: contributions and recoveries in, compensations out.
CREATE TABLE fund_ledger_entries (
  id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  fund_id     UUID NOT NULL REFERENCES funds (id),
  value_date  DATE NOT NULL,
  kind        TEXT NOT NULL CHECK (kind IN ('contribution', 'compensation', 'recovery', 'reversal')),
  amount      NUMERIC(18, 2) NOT NULL CHECK (amount <> 0),
  source      TEXT CHECK (source IN ('province_finance', 'city_finance', 'county_finance', 'other')),
  loan_id     UUID,
  reference   TEXT CHECK (length(reference) <= 200),
  created_by  UUID,
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT fund_ledger_sign CHECK (
    (kind IN ('contribution', 'recovery') AND amount > 0)
    OR (kind = 'compensation' AND amount < 0)
    OR kind = 'reversal'
  ),
  CONSTRAINT fund_ledger_contribution_source CHECK ((kind = 'contribution') = (source IS NOT NULL))
);
CREATE INDEX fund_ledger_fund_date ON fund_ledger_entries (fund_id, value_date, id);
CREATE TRIGGER fund_ledger_append_only BEFORE UPDATE OR DELETE ON fund_ledger_entries FOR EACH ROW EXECUTE FUNCTION danbao_forbid_change();

-- Certified communities (信用社区); residents may borrow without a counter-guarantee while
-- the community is certified. Revocation sets revoked_on once; nothing else changes.
CREATE TABLE credit_communities (
  id                UUID PRIMARY KEY,
  centre_id         UUID NOT NULL REFERENCES centres (id),
  region_code       TEXT NOT NULL REFERENCES regions (code),
  name              TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  certified_on      DATE NOT NULL,
  revoked_on        DATE,
  revocation_reason TEXT CHECK (length(revocation_reason) BETWEEN 1 AND 500),
  created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT credit_communities_revocation CHECK (
    (revoked_on IS NULL AND revocation_reason IS NULL)
    OR (revoked_on IS NOT NULL AND revocation_reason IS NOT NULL AND revoked_on >= certified_on)
  )
);
CREATE INDEX credit_communities_centre ON credit_communities (centre_id);
CREATE INDEX credit_communities_region ON credit_communities (region_code text_pattern_ops);
CREATE TRIGGER credit_communities_no_delete BEFORE DELETE ON credit_communities FOR EACH ROW EXECUTE FUNCTION danbao_forbid_delete();

CREATE FUNCTION danbao_revoke_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.revoked_on IS NOT NULL
     OR NEW.id <> OLD.id OR NEW.centre_id <> OLD.centre_id OR NEW.region_code <> OLD.region_code
     OR NEW.name <> OLD.name OR NEW.certified_on <> OLD.certified_on THEN
    RAISE EXCEPTION 'a credit community is only ever changed by one revocation'
      USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER credit_communities_revoke_once BEFORE UPDATE ON credit_communities FOR EACH ROW EXECUTE FUNCTION danbao_revoke_once();

-- Borrowers: a person (alone or leading a partnership) or a small enterprise. The national id
-- and phone are stored only encrypted (AES-256-GCM, key outside the database) with a keyed
-- hash (HMAC-SHA256) of the id for look-ups and the one-loan-per-person rule.
CREATE TABLE borrowers (
  id                        UUID PRIMARY KEY,
  centre_id                 UUID NOT NULL REFERENCES centres (id),
  kind                      TEXT NOT NULL CHECK (kind IN ('individual', 'partnership', 'small_enterprise')),
  category                  TEXT NOT NULL CHECK (category IN ('laid_off', 'registered_unemployed', 'graduate',
                              'demobilised_soldier', 'returning_migrant', 'disabled', 'small_enterprise')),
  name                      TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  national_id_enc           BYTEA,
  national_id_hmac          BYTEA UNIQUE CHECK (octet_length(national_id_hmac) = 32),
  national_id_masked        TEXT CHECK (national_id_masked ~ '^[0-9]{6}\*{8}[0-9]{3}[0-9X]$'),
  birth_date                DATE,
  phone_enc                 BYTEA,
  employment_certificate_no TEXT CHECK (length(employment_certificate_no) BETWEEN 1 AND 64),
  credit_community_id       UUID REFERENCES credit_communities (id),
  member_count              INTEGER NOT NULL DEFAULT 1 CHECK (member_count BETWEEN 1 AND 100),
  enterprise_registration_no TEXT CHECK (enterprise_registration_no ~ '^[0-9A-Z]{18}$'),
  employees                 INTEGER CHECK (employees >= 0),
  eligible_employees        INTEGER CHECK (eligible_employees >= 0),
  created_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT borrowers_kind_shape CHECK (
    (kind = 'small_enterprise' AND category = 'small_enterprise' AND national_id_hmac IS NULL
       AND enterprise_registration_no IS NOT NULL AND member_count = 1)
    OR (kind <> 'small_enterprise' AND category <> 'small_enterprise' AND national_id_hmac IS NOT NULL
       AND national_id_enc IS NOT NULL AND national_id_masked IS NOT NULL AND birth_date IS NOT NULL
       AND enterprise_registration_no IS NULL AND (kind = 'partnership') = (member_count >= 2))
  ),
  CONSTRAINT borrowers_eligible_within_employees CHECK (eligible_employees <= employees)
);
CREATE INDEX borrowers_centre ON borrowers (centre_id, id);
CREATE TRIGGER borrowers_no_delete BEFORE DELETE ON borrowers FOR EACH ROW EXECUTE FUNCTION danbao_forbid_delete();

-- A guaranteed loan from application to its end. Four-eyes is a constraint: whoever decides
-- is not whoever entered. `person_hmac` repeats the borrower's so that a partial unique index
-- can refuse a second unsettled loan for one person, even under concurrent approvals.
CREATE TABLE loans (
  id                  UUID PRIMARY KEY,
  borrower_id         UUID NOT NULL REFERENCES borrowers (id),
  centre_id           UUID NOT NULL REFERENCES centres (id),
  fund_id             UUID NOT NULL REFERENCES funds (id),
  bank_id             UUID NOT NULL REFERENCES banks (id),
  policy_id           UUID NOT NULL REFERENCES policies (id),
  person_hmac         BYTEA CHECK (octet_length(person_hmac) = 32),
  principal           NUMERIC(18, 2) NOT NULL CHECK (principal > 0),
  term_months         INTEGER NOT NULL CHECK (term_months BETWEEN 1 AND 120),
  annual_rate         NUMERIC(9, 6) NOT NULL CHECK (annual_rate >= 0 AND annual_rate <= 1),
  schedule_method     TEXT NOT NULL CHECK (schedule_method IN ('bullet', 'interest_monthly', 'interest_quarterly',
                        'equal_instalment', 'equal_principal')),
  interest_convention TEXT NOT NULL CHECK (interest_convention IN ('actual_360', 'monthly_30')),
  purpose             TEXT NOT NULL CHECK (length(purpose) BETWEEN 1 AND 500),
  micro_profit        BOOLEAN NOT NULL,
  jobs_declared       INTEGER NOT NULL CHECK (jobs_declared BETWEEN 0 AND 100000),
  counter_guarantee   JSONB NOT NULL,
  waiver              BOOLEAN NOT NULL,
  status              TEXT NOT NULL CHECK (status IN ('applied', 'approved', 'rejected', 'cancelled', 'active',
                        'settled', 'compensated', 'written_off')),
  applied_on          DATE NOT NULL,
  entered_by          UUID NOT NULL REFERENCES users (id),
  decided_on          DATE,
  decided_by          UUID REFERENCES users (id),
  decision_reason     TEXT CHECK (length(decision_reason) BETWEEN 1 AND 500),
  approved_on         DATE,
  cancelled_on        DATE,
  cancelled_by        UUID REFERENCES users (id),
  released_on         DATE,
  created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT loans_four_eyes CHECK (decided_by IS NULL OR decided_by <> entered_by),
  CONSTRAINT loans_decision_shape CHECK (
    (status = 'applied' AND decided_on IS NULL AND decided_by IS NULL AND approved_on IS NULL AND cancelled_on IS NULL)
    OR (status = 'rejected' AND decided_on IS NOT NULL AND decided_by IS NOT NULL AND approved_on IS NULL)
    OR (status = 'cancelled' AND cancelled_on IS NOT NULL AND cancelled_by IS NOT NULL
        AND (approved_on IS NULL) = (released_on IS NULL))
    OR (status NOT IN ('applied', 'rejected', 'cancelled') AND approved_on IS NOT NULL AND decided_by IS NOT NULL
        AND decided_on = approved_on)
  ),
  CONSTRAINT loans_dates CHECK (
    (decided_on IS NULL OR decided_on >= applied_on)
    AND (cancelled_on IS NULL OR cancelled_on >= applied_on)
    AND (released_on IS NULL OR released_on >= approved_on)
  ),
  CONSTRAINT loans_waiver_shape CHECK (waiver = (counter_guarantee ->> 'kind' = 'credit_community_waiver'))
);
CREATE INDEX loans_centre ON loans (centre_id, id);
CREATE INDEX loans_bank ON loans (bank_id, id);
CREATE INDEX loans_borrower ON loans (borrower_id);
CREATE INDEX loans_fund_status ON loans (fund_id, status);
CREATE UNIQUE INDEX loans_one_unsettled_per_person ON loans (person_hmac)
  WHERE person_hmac IS NOT NULL AND status IN ('approved', 'active', 'compensated');
CREATE TRIGGER loans_no_delete BEFORE DELETE ON loans FOR EACH ROW EXECUTE FUNCTION danbao_forbid_delete();
