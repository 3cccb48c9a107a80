// Hand-kept in step with migrations/; the repository tests exercise every table against a
// real migrated database, so a drift fails there.

diesel::table! {
    regions (code) {
        code -> Text,
        name -> Text,
        parent_code -> Nullable<Text>,
        level -> Int2,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    centres (id) {
        id -> Uuid,
        name -> Text,
        region_code -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    banks (id) {
        id -> Uuid,
        code -> Text,
        name -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        username -> Text,
        display_name -> Text,
        password_hash -> Text,
        role -> Text,
        centre_id -> Nullable<Uuid>,
        bank_id -> Nullable<Uuid>,
        region_code -> Nullable<Text>,
        active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    bank_clients (id) {
        id -> Uuid,
        client_id -> Text,
        secret_hash -> Text,
        bank_id -> Uuid,
        name -> Text,
        active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    policies (id) {
        id -> Uuid,
        code -> Text,
        name -> Text,
        region_code -> Nullable<Text>,
        effective_from -> Date,
        individual_limit -> Numeric,
        partnership_limit_multiple -> Numeric,
        small_enterprise_limit -> Nullable<Numeric>,
        max_term_months -> Int4,
        enterprise_max_term_months -> Int4,
        extension_max_months -> Int4,
        benchmark_rate -> Numeric,
        max_rate_spread -> Numeric,
        penalty_rate_multiplier -> Numeric,
        leverage_multiple -> Numeric,
        leverage_bonus_multiple -> Nullable<Numeric>,
        leverage_bonus_min_repayment_rate -> Nullable<Numeric>,
        waiver_limit -> Numeric,
        compensation_overdue_days -> Int4,
        compensation_pay_within_days -> Int4,
        fund_share -> Numeric,
        bank_share -> Numeric,
        other_share -> Numeric,
        subsidy_share_laid_off -> Numeric,
        subsidy_share_registered_unemployed -> Numeric,
        subsidy_share_graduate -> Numeric,
        subsidy_share_demobilised_soldier -> Numeric,
        subsidy_share_returning_migrant -> Numeric,
        subsidy_share_disabled -> Numeric,
        subsidy_share_small_enterprise -> Numeric,
        grace_days -> Int4,
        bank_stop_overdue_ratio -> Numeric,
        reward_share -> Numeric,
        reward_min_repayment_rate -> Numeric,
        min_age -> Int4,
        max_age -> Int4,
        certificate_required -> Bool,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Int8,
        occurred_at -> Timestamptz,
        actor_kind -> Text,
        actor_id -> Nullable<Uuid>,
        actor_name -> Text,
        actor_role -> Text,
        action -> Text,
        entity_type -> Text,
        entity_id -> Text,
        region_code -> Nullable<Text>,
        request_id -> Nullable<Text>,
        detail -> Jsonb,
    }
}

diesel::table! {
    funds (id) {
        id -> Uuid,
        centre_id -> Uuid,
        name -> Text,
        bank_account -> Nullable<Text>,
        balance -> Numeric,
        outstanding_guaranteed -> Numeric,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    fund_ledger_entries (id) {
        id -> Int8,
        fund_id -> Uuid,
        value_date -> Date,
        kind -> Text,
        amount -> Numeric,
        source -> Nullable<Text>,
        loan_id -> Nullable<Uuid>,
        reference -> Nullable<Text>,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    credit_communities (id) {
        id -> Uuid,
        centre_id -> Uuid,
        region_code -> Text,
        name -> Text,
        certified_on -> Date,
        revoked_on -> Nullable<Date>,
        revocation_reason -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    borrowers (id) {
        id -> Uuid,
        centre_id -> Uuid,
        kind -> Text,
        category -> Text,
        name -> Text,
        national_id_enc -> Nullable<Bytea>,
        national_id_hmac -> Nullable<Bytea>,
        national_id_masked -> Nullable<Text>,
        birth_date -> Nullable<Date>,
        phone_enc -> Nullable<Bytea>,
        employment_certificate_no -> Nullable<Text>,
        credit_community_id -> Nullable<Uuid>,
        member_count -> Int4,
        enterprise_registration_no -> Nullable<Text>,
        employees -> Nullable<Int4>,
        eligible_employees -> Nullable<Int4>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    loans (id) {
        id -> Uuid,
        borrower_id -> Uuid,
        centre_id -> Uuid,
        fund_id -> Uuid,
        bank_id -> Uuid,
        policy_id -> Uuid,
        person_hmac -> Nullable<Bytea>,
        principal -> Numeric,
        term_months -> Int4,
        annual_rate -> Numeric,
        schedule_method -> Text,
        interest_convention -> Text,
        purpose -> Text,
        micro_profit -> Bool,
        jobs_declared -> Int4,
        counter_guarantee -> Jsonb,
        waiver -> Bool,
        status -> Text,
        applied_on -> Date,
        entered_by -> Uuid,
        decided_on -> Nullable<Date>,
        decided_by -> Nullable<Uuid>,
        decision_reason -> Nullable<Text>,
        approved_on -> Nullable<Date>,
        cancelled_on -> Nullable<Date>,
        cancelled_by -> Nullable<Uuid>,
        released_on -> Nullable<Date>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        disbursed_on -> Nullable<Date>,
        maturity_date -> Nullable<Date>,
        bank_account_no -> Nullable<Text>,
        disbursed_by -> Nullable<Uuid>,
        schedule_version -> Int2,
        region_code -> Text,
        category -> Text,
        prev_disbursed_on -> Nullable<Date>,
        closed_unpaid -> Nullable<Numeric>,
        closed_paid_until -> Nullable<Date>,
    }
}

diesel::table! {
    idempotency_keys (principal_id, route, key) {
        principal_id -> Uuid,
        route -> Text,
        key -> Text,
        fingerprint -> Bytea,
        response_status -> Int2,
        response_body -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(centres -> regions (region_code));
diesel::joinable!(users -> centres (centre_id));
diesel::joinable!(users -> banks (bank_id));
diesel::joinable!(bank_clients -> banks (bank_id));
diesel::joinable!(funds -> centres (centre_id));
diesel::joinable!(fund_ledger_entries -> funds (fund_id));
diesel::joinable!(credit_communities -> centres (centre_id));
diesel::joinable!(borrowers -> centres (centre_id));
diesel::joinable!(borrowers -> credit_communities (credit_community_id));
diesel::joinable!(loans -> borrowers (borrower_id));
diesel::joinable!(loans -> funds (fund_id));
diesel::joinable!(loans -> banks (bank_id));
diesel::joinable!(loans -> policies (policy_id));

diesel::table! {
    instalments (loan_id, version, number) {
        loan_id -> Uuid,
        number -> Int4,
        due_date -> Date,
        principal -> Numeric,
        interest -> Numeric,
        created_at -> Timestamptz,
        version -> Int2,
    }
}

diesel::table! {
    loan_extensions (loan_id) {
        loan_id -> Uuid,
        agreed_on -> Date,
        months -> Int4,
        old_maturity -> Date,
        new_maturity -> Date,
        first_extended -> Int4,
        rescheduled_principal -> Numeric,
        reason -> Text,
        created_by -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    compensation_claims (id) {
        id -> Uuid,
        loan_id -> Uuid,
        bank_id -> Uuid,
        fund_id -> Uuid,
        filed_on -> Date,
        days_past_due -> Int4,
        outstanding_principal -> Numeric,
        overdue_interest -> Numeric,
        fund_share -> Numeric,
        claimed_amount -> Numeric,
        filed_by -> Uuid,
        created_at -> Timestamptz,
        status -> Text,
        approved_on -> Nullable<Date>,
        approved_by -> Nullable<Uuid>,
        paid_amount -> Nullable<Numeric>,
        ledger_entry_id -> Nullable<Int8>,
    }
}

diesel::table! {
    recoveries (id) {
        id -> Uuid,
        loan_id -> Uuid,
        claim_id -> Uuid,
        value_date -> Date,
        amount -> Numeric,
        to_fund -> Numeric,
        reference -> Text,
        ledger_entry_id -> Nullable<Int8>,
        created_by -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    write_offs (loan_id) {
        loan_id -> Uuid,
        claim_id -> Uuid,
        written_off_on -> Date,
        compensation_paid -> Numeric,
        recovered_to_fund -> Numeric,
        loss -> Numeric,
        reason -> Text,
        created_by -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    instalment_facts (loan_id, number) {
        loan_id -> Uuid,
        number -> Int4,
        due_date -> Date,
        principal -> Numeric,
        interest -> Numeric,
        subsidy -> Numeric,
        extended -> Bool,
        paid_on -> Nullable<Date>,
    }
}

diesel::table! {
    principal_payments (loan_id, number, value_date) {
        loan_id -> Uuid,
        number -> Int4,
        value_date -> Date,
        principal -> Numeric,
        due_date -> Date,
    }
}

diesel::table! {
    targets (id) {
        id -> Int8,
        region_code -> Text,
        year -> Int4,
        measure -> Text,
        value -> Numeric,
        set_by -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(instalment_facts -> loans (loan_id));
diesel::joinable!(loan_extensions -> loans (loan_id));
diesel::joinable!(compensation_claims -> loans (loan_id));
diesel::joinable!(recoveries -> loans (loan_id));
diesel::joinable!(write_offs -> loans (loan_id));

diesel::table! {
    repayments (id) {
        id -> Uuid,
        loan_id -> Uuid,
        bank_id -> Uuid,
        bank_reference -> Text,
        value_date -> Date,
        amount -> Numeric,
        to_penalty -> Numeric,
        to_interest -> Numeric,
        to_principal -> Numeric,
        created_by -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    repayment_reversals (repayment_id) {
        repayment_id -> Uuid,
        reason -> Text,
        value_date -> Date,
        created_by -> Uuid,
        created_at -> Timestamptz,
        loan_id -> Uuid,
    }
}

diesel::table! {
    repayment_allocations (id) {
        id -> Int8,
        repayment_id -> Uuid,
        loan_id -> Uuid,
        to_penalty -> Numeric,
        to_interest -> Numeric,
        to_principal -> Numeric,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(instalments -> loans (loan_id));
// Checked per statement by repayments_fit_loan, not a foreign key (migration 000022).
diesel::joinable!(repayments -> loans (loan_id));
diesel::joinable!(repayment_reversals -> repayments (repayment_id));

diesel::allow_tables_to_appear_in_same_query!(
    regions,
    centres,
    banks,
    users,
    bank_clients,
    policies,
    audit_events,
    funds,
    fund_ledger_entries,
    credit_communities,
    borrowers,
    loans,
    idempotency_keys,
    instalments,
    repayments,
    repayment_reversals,
    repayment_allocations,
    loan_extensions,
    compensation_claims,
    recoveries,
    write_offs,
    instalment_facts,
    principal_payments,
    targets,
);

diesel::table! {
    repayment_batches (id) {
        id -> Uuid,
        bank_id -> Uuid,
        format -> Text,
        atomic -> Bool,
        status -> Text,
        rows -> Int4,
        applied -> Int4,
        duplicates -> Int4,
        failed -> Int4,
        created_by -> Uuid,
        created_at -> Timestamptz,
        request_id -> Nullable<Text>,
    }
}

diesel::table! {
    repayment_batch_rows (batch_id, row_no) {
        batch_id -> Uuid,
        row_no -> Int4,
        bank_reference -> Text,
        loan_id -> Nullable<Uuid>,
        outcome -> Text,
        repayment_id -> Nullable<Uuid>,
        error_code -> Nullable<Text>,
        error_field -> Nullable<Text>,
        error_message -> Nullable<Text>,
    }
}

diesel::joinable!(repayment_batch_rows -> repayment_batches (batch_id));
diesel::allow_tables_to_appear_in_same_query!(repayment_batches, repayment_batch_rows);

diesel::table! {
    login_attempts (id) {
        id -> Int8,
        account -> Text,
        address -> Text,
        at -> Timestamptz,
        succeeded -> Bool,
    }
}
