//! `danbao import-repayments`: a bank's daily file applied by the built binary, straight to
//! the database the service uses.

use crate::database_url::serve_on_test_db;
use crate::faults::world::{ok, seed};
use crate::harness::danbao;
use danbao_persistence::diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::json;
use std::process::Output;

fn import(url: &str, args: &[&str]) -> Output {
    danbao()
        .env("DATABASE_URL", url)
        .arg("import-repayments")
        .args(args)
        .output()
        .expect("run danbao import-repayments")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_repayments_applies_a_file_and_reports() {
    let served = serve_on_test_db().await;
    let s = &served.server;
    // Nanchang, bank JXRCU with user `teller`, clerk `wang`, five disbursed loans (ACC-1..5).
    let world = seed(s, 5).await;
    let teller = world.teller;
    ok(
        s,
        &world.admin,
        "/v1/banks",
        json!({ "code": "EMPTY", "name": "无用户银行" }),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let mut good = String::from("bank_reference,value_date,amount,bank_account_no\r\n");
    for i in 0..250u32 {
        good.push_str(&format!(
            "D-{i},2025-03-{:02},10.00,ACC-{}\r\n",
            1 + i % 28,
            1 + i % 5
        ));
    }
    let good_path = dir.path().join("good.csv");
    std::fs::write(&good_path, &good).unwrap();
    let url = served.database_url();

    let out = import(url, &["--bank", "JXRCU", good_path.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("250 rows, 250 applied, 0 duplicates, 0 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("rows/s"), "{stdout}");
    // The service sees the money: 50 rows of 10.00 per loan.
    let (status, loans) = s.get_json(&teller, "/v1/loans?status=active").await;
    assert_eq!(status, 200);
    for l in loans["items"].as_array().unwrap() {
        assert_ne!(l["position"]["principal_paid"], "0.00", "{l}");
    }

    // Again: nothing moves; as a named user.
    let out = import(
        url,
        &[
            "--bank",
            "JXRCU",
            "--user",
            "teller",
            good_path.to_str().unwrap(),
        ],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("250 rows, 0 applied, 250 duplicates, 0 failed"),
        "{stdout}"
    );

    // A bad row: the others apply, the summary lists it, the exit code says so.
    let bad_path = dir.path().join("bad.csv");
    std::fs::write(
        &bad_path,
        "bank_reference,value_date,amount,bank_account_no\nE-1,2025-04-01,10.00,ACC-1\nE-2,2025-04-01,10.001,ACC-2\nE-3,2025-04-01,1.00,ACC-404\n",
    )
    .unwrap();
    let out = import(url, &["--bank", "JXRCU", bad_path.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("3 rows, 1 applied, 0 duplicates, 2 failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("row 2 (E-2): validation_failed amount"),
        "{stdout}"
    );
    assert!(
        stdout.contains("row 3 (E-3): not_found bank_account_no"),
        "{stdout}"
    );
    // Atomic: nothing of it applies.
    let out = import(
        url,
        &["--bank", "JXRCU", "--atomic", bad_path.to_str().unwrap()],
    );
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("(rejected, atomic)"), "{stdout}");

    // Who acts: an unknown user, a bank without users, an unknown bank; a bad header.
    for (args, says) in [
        (
            vec!["--bank", "JXRCU", "--user", "wang"],
            "not an active bank user",
        ),
        (vec!["--bank", "EMPTY"], "has no active bank user"),
        (vec!["--bank", "NOPE"], "no bank with code NOPE"),
    ] {
        let mut args = args.clone();
        args.push(good_path.to_str().unwrap());
        let out = import(url, &args);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    let header_path = dir.path().join("header.csv");
    std::fs::write(&header_path, "bank_reference,value_date,amount,memo\n").unwrap();
    let out = import(url, &["--bank", "JXRCU", header_path.to_str().unwrap()]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("memo: unknown column"), "{stderr}");
}

/// The same rows in chunks of 7 (each loan's books carried from chunk to chunk, its rows out
/// of date order so that later chunks move allocations made by earlier ones, an overpayment
/// refused midway, two rows sent again in the chunk after theirs, while the first are still
/// being written), in one chunk, and in chunks of 7 three of whose set writes fail (such a
/// chunk goes row by row, and the next one, planned meanwhile, is planned again), on triplet
/// loans: the
/// same outcomes, the same books, and facts that `danbao verify` recomputes to the same.
/// A loan's instalment facts, principal payments and overdue spans, as text without its id.
async fn facts_of(db: &mut AsyncPgConnection, loan: &str) -> String {
    use danbao_persistence::diesel::{sql_query, sql_types::Text, QueryableByName};
    use danbao_persistence::diesel_async::RunQueryDsl;
    #[derive(QueryableByName)]
    struct Rows {
        #[diesel(sql_type = Text)]
        rows: String,
    }
    let r: Rows = sql_query(format!(
        "SELECT concat_ws(' | ',
           (SELECT string_agg(concat_ws(',', number, due_date, principal, interest, subsidy,
                                        extended, paid_on, closed_on), ';' ORDER BY number)
            FROM instalment_facts WHERE loan_id = '{loan}'),
           (SELECT string_agg(concat_ws(',', number, value_date, principal, due_date), ';'
                              ORDER BY number, value_date)
            FROM principal_payments WHERE loan_id = '{loan}'),
           (SELECT string_agg(concat_ws(',', starts_on, ends_on, oldest_due, overdue, outstanding),
                              ';' ORDER BY starts_on)
            FROM overdue_spans WHERE loan_id = '{loan}')) AS rows"
    ))
    .get_result(db)
    .await
    .unwrap();
    assert!(r.rows.contains(';'), "{loan}: {}", r.rows);
    r.rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_repayments_gives_the_same_books_in_small_chunks_as_in_one() {
    let served = serve_on_test_db().await;
    let s = &served.server;
    let world = seed(s, 12).await;
    let teller = world.teller;
    let dir = tempfile::tempdir().unwrap();
    // Loans 1-4 get the rows in chunks of 7, loans 5-8 the same rows in one chunk, loans
    // 9-12 in chunks of 7 of which three go row by row. `danbao verify` at the end checks
    // every loan's facts and spans against its position.
    let file = |twin: usize, prefix: &str| {
        let mut lines: Vec<String> = (0..120usize)
            .map(|i| {
                let loan = 1 + i % 4 + twin;
                let day = 1 + (i * 11) % 28;
                let month = if i % 3 == 0 { 2 } else { 3 };
                // More than loan 3 (and its twins) owes: refused, the rows around it apply.
                let amount = if i == 50 { "13000.00" } else { "25.00" };
                format!("{prefix}-{i},2025-{month:02}-{day:02},{amount},ACC-{loan}\r\n")
            })
            .collect();
        // Rows 54 and 55 (the eighth chunk of 7) sent again in the ninth: the same (a
        // duplicate) and with another amount (refused).
        let again = lines[55].clone();
        let other = lines[54].replace(",25.00,", ",26.00,");
        lines.insert(60, again);
        lines.insert(61, other);
        String::from("bank_reference,value_date,amount,bank_account_no\r\n") + &lines.concat()
    };
    let small = dir.path().join("small.csv");
    let whole = dir.path().join("whole.csv");
    let failing = dir.path().join("failing.csv");
    std::fs::write(&small, file(0, "S")).unwrap();
    std::fs::write(&whole, file(4, "W")).unwrap();
    std::fs::write(&failing, file(8, "F")).unwrap();
    let url = served.database_url();
    let mut db = AsyncPgConnection::establish(url).await.unwrap();
    let mut summaries = Vec::new();
    for (path, rows) in [(&small, "7"), (&whole, "100000"), (&failing, "7")] {
        if path == &failing {
            // The set writes of the chunks holding rows 20, 54 and 90 are refused: they go
            // row by row, after the next chunk was planned on their planned writes. Row 54
            // itself is refused too, so that what the next chunk was planned on did not
            // happen: sent again with another amount there, it is a new repayment.
            db.batch_execute(
                "CREATE FUNCTION one_at_a_time() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                   IF EXISTS (SELECT 1 FROM new_rows WHERE bank_reference = 'F-54' AND amount = 25.00) THEN
                     RAISE check_violation USING MESSAGE = 'not F-54';
                   END IF;
                   IF (SELECT count(*) FROM new_rows) > 1 AND EXISTS (
                        SELECT 1 FROM new_rows WHERE bank_reference IN ('F-20', 'F-90')) THEN
                     RAISE unique_violation USING MESSAGE = 'one at a time';
                   END IF;
                   RETURN NULL;
                 END $$;
                 CREATE TRIGGER one_at_a_time AFTER INSERT ON repayments
                   REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION one_at_a_time();",
            )
            .await
            .unwrap();
        }
        // The small chunks' facts are written before nearly every chunk (more than 2 loans
        // wait); the failing file's wait, but for the chunks that go row by row.
        let pending = if path == &small { "2" } else { "10000" };
        let out = import(
            url,
            &[
                "--bank",
                "JXRCU",
                "--chunk-rows",
                rows,
                "--pending-loans",
                pending,
                path.to_str().unwrap(),
            ],
        );
        let (stdout, stderr) = text(&out);
        assert!(
            matches!(out.status.code(), Some(0 | 2)),
            "{stdout}\n{stderr}"
        );
        if path == &failing {
            // Only those three: the chunks planned meanwhile were planned again, not written
            // from plans that counted on rows that were never written.
            assert_eq!(stderr.matches("applied row by row").count(), 3, "{stderr}");
            assert!(
                stdout.contains("row 55 (F-54): validation_failed"),
                "{stdout}"
            );
            assert!(!stdout.contains("row 62"), "{stdout}");
        } else {
            assert!(stdout.contains("row 62 ("), "{stdout}");
        }
        let line = stdout
            .lines()
            .find(|l| l.contains(" rows, "))
            .unwrap_or_else(|| panic!("{stdout}"));
        summaries.push(line[line.find(": ").unwrap()..].to_owned());
    }
    assert_eq!(summaries[0], summaries[1]);
    assert_eq!(summaries[0], summaries[2]);
    assert!(
        summaries[0].contains("122 rows, 119 applied, 1 duplicates, 2 failed"),
        "{}",
        summaries[0]
    );

    for k in 0..4 {
        let a = &world.loans[k].0;
        let (_, la) = s.get_json(&teller, &format!("/v1/loans/{a}")).await;
        let (_, sa) = s
            .get_json(&teller, &format!("/v1/loans/{a}/schedule"))
            .await;
        // Loan 11 took row 54 at 26.00 (sent again) instead of 25.00.
        for twin in [4, 8].into_iter().filter(|t| k + t != 10) {
            let b = &world.loans[k + twin].0;
            let (_, lb) = s.get_json(&teller, &format!("/v1/loans/{b}")).await;
            assert_eq!(
                la["position"],
                lb["position"],
                "loan {} and {}",
                k + 1,
                k + twin + 1
            );
            assert_eq!(la["status"], lb["status"], "loan {}", k + 1);
            let (_, sb) = s
                .get_json(&teller, &format!("/v1/loans/{b}/schedule"))
                .await;
            assert_eq!(sa["instalments"], sb["instalments"], "loan {}", k + 1);
            // The statistics' rows too, whenever the file wrote them.
            assert_eq!(
                facts_of(&mut db, a).await,
                facts_of(&mut db, b).await,
                "loan {} and {}",
                k + 1,
                k + twin + 1
            );
        }
    }
    db.batch_execute("DROP TRIGGER one_at_a_time ON repayments; DROP FUNCTION one_at_a_time();")
        .await
        .unwrap();
    let out = danbao()
        .arg("verify")
        .env("DATABASE_URL", url)
        .env("DANBAO_DATA_KEY", crate::harness::DATA_KEY)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
}
