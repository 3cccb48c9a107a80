//! `danbao`: the guarantee programme's service and its command-line tools.
use clap::{Args, Parser, Subcommand};
use danbao_api::auth::Role;
use danbao_api::bootstrap::{self, open_database};
use danbao_api::ratelimit::RateLimiter;
use danbao_api::startup::{self, ServerOptions};
use danbao_api::state::AppState;
use danbao_api::telemetry;
use danbao_persistence::{migrate, pool};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

/// danbao (担保): guaranteed microloans for people starting a business.
///
/// Guarantee-centre clerks register borrowers and approve guarantees against a fund; banks
/// report disbursements and repayments; supervisors watch repayment rates and targets.
///
/// Quick start: `danbao serve` starts the service on http://127.0.0.1:8080 with its own
/// PostgreSQL under ./danbao-data (from the installed PostgreSQL binaries) and prints the
/// first admin's password. Set DATABASE_URL to use an existing server instead.
#[derive(Parser)]
#[command(name = "danbao", version, about, long_about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    db: DbArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct DbArgs {
    /// PostgreSQL server to use, e.g. postgres://user:pass@host/danbao. Without it, danbao
    /// starts and owns a local cluster in --data-dir.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// Where the local PostgreSQL cluster lives when no DATABASE_URL is given.
    #[arg(
        long,
        env = "DANBAO_DATA_DIR",
        global = true,
        default_value = "./danbao-data"
    )]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (migrates the database first; creates `admin` on a fresh one).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create a user. The password comes from DANBAO_NEW_USER_PASSWORD, or is generated and printed once.
    CreateUser(CreateUserArgs),
    /// Load the nationwide policy presets (2002, 2006, 2008, 2020); safe to run again.
    LoadPolicyPresets,
    /// Print the OpenAPI document (the committed copy is openapi/openapi.json).
    Openapi,
    /// Check every reconciliation rule on the whole database; exit 1 naming what does not add up.
    Verify(VerifyArgs),
    /// Apply a bank's daily repayment file (CSV, as for POST /v1/repayment-batches) directly
    /// to the database, as one of the bank's users. Exits 2 if any row failed.
    ImportRepayments(ImportArgs),
    /// Fill an empty database with a deterministic demo province (Jiangxi, from --from-year to
    /// today): regions, centres, funds, banks, users, communities, borrowers and loans with
    /// their whole history. Every demo user's password is printed at the end.
    Demo(DemoArgs),
}

#[derive(Args)]
struct DemoArgs {
    /// Seed of the generator: the same seed (on the same day) gives the same data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of loans (applications) to generate.
    #[arg(long, default_value_t = 20_000)]
    loans: u32,
    /// First year of the programme's history.
    #[arg(long, default_value_t = 2006)]
    from_year: i32,
    /// Business time zone: what "today" means (no date is after it).
    #[arg(long, env = "DANBAO_TIMEZONE", default_value = "Asia/Shanghai")]
    timezone: chrono_tz::Tz,
    /// Key for personal data at rest (64 hex digits), as for `serve`.
    #[arg(long, env = "DANBAO_DATA_KEY", hide_env_values = true)]
    data_key: Option<String>,
    /// Skip the `danbao verify` run at the end (run it separately; at a million loans it
    /// takes longer than the generation).
    #[arg(long)]
    no_verify: bool,
}

#[derive(Args)]
struct VerifyArgs {
    /// Business time zone: what "today" means for loan positions.
    #[arg(long, env = "DANBAO_TIMEZONE", default_value = "Asia/Shanghai")]
    timezone: chrono_tz::Tz,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// First rewrite every loan's statistics facts from its entries (after an upgrade that
    /// added them, or to repair them).
    #[arg(long)]
    rebuild_facts: bool,
}

#[derive(Args)]
struct ImportArgs {
    /// The bank's code (as given to POST /v1/banks).
    #[arg(long)]
    bank: String,
    /// Act as this active bank user of the bank (default: its first active bank user).
    #[arg(long)]
    user: Option<String>,
    /// All rows or none: any failed row rejects the whole file.
    #[arg(long)]
    atomic: bool,
    /// Rows applied together: more is faster for a file spread over many loans, and takes
    /// more memory.
    #[arg(long, default_value_t = danbao_api::routes::repayment_batches::CHUNK_ROWS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    chunk_rows: usize,
    /// Loans whose statistics facts may wait before they are written (once per loan instead
    /// of once per chunk): more is faster for a file with many rows per loan, and takes more
    /// memory (a few KiB per loan).
    #[arg(long, default_value_t = danbao_api::routes::repayment_batches::PENDING_LOANS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pending_loans: usize,
    /// Business time zone: what "today" means for value dates.
    #[arg(long, env = "DANBAO_TIMEZONE", default_value = "Asia/Shanghai")]
    timezone: chrono_tz::Tz,
    /// The CSV file: RFC 4180 with a header row (see README, "Daily repayment files").
    file: PathBuf,
}

/// Rows of an imported file failed: exit code 2 (the summary says which).
#[derive(Debug)]
struct RowsFailed(i32);

impl std::fmt::Display for RowsFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} row(s) failed", self.0)
    }
}

impl std::error::Error for RowsFailed {}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "DANBAO_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// HTTP worker threads.
    #[arg(long, env = "DANBAO_WORKERS", default_value_t = 2)]
    workers: usize,
    /// Database connections in the pool.
    #[arg(long, env = "DANBAO_POOL_SIZE", default_value_t = 16)]
    pool_size: usize,
    /// A streaming replica of the database for statistics and list reads (a pool of the same
    /// size); writes and every other read stay on the primary.
    #[arg(long, env = "DATABASE_READ_URL", hide_env_values = true)]
    database_read_url: Option<String>,
    /// Failed logins of one account that lock it (429) for `--login-lock-seconds`.
    #[arg(long, env = "DANBAO_LOGIN_MAX_FAILURES", default_value_t = 5)]
    login_max_failures: u32,
    /// Failed logins from one address (any account) that lock the address.
    #[arg(
        long,
        env = "DANBAO_LOGIN_MAX_FAILURES_PER_ADDRESS",
        default_value_t = 100
    )]
    login_max_failures_per_address: u32,
    /// How long failed logins count (and a lock lasts), in seconds.
    #[arg(long, env = "DANBAO_LOGIN_LOCK_SECONDS", default_value_t = 900)]
    login_lock_seconds: u64,
    /// Requests a second each bank user or bank client may make on average (0: no limit);
    /// more are answered 429 with Retry-After.
    #[arg(long, env = "DANBAO_BANK_RATE_PER_SECOND", default_value_t = 100)]
    bank_rate_per_second: u32,
    /// Requests a bank principal may make at once above its average rate.
    #[arg(long, env = "DANBAO_BANK_RATE_BURST", default_value_t = 200)]
    bank_rate_burst: u32,
    /// POST /v1/auth/token requests a minute from one address on average (0: no limit).
    #[arg(long, env = "DANBAO_TOKEN_RATE_PER_MINUTE", default_value_t = 60)]
    token_rate_per_minute: u32,
    /// Token requests one address may make at once above that rate.
    #[arg(long, env = "DANBAO_TOKEN_RATE_BURST", default_value_t = 30)]
    token_rate_burst: u32,
    /// Longest wait for a database connection before answering 503 (milliseconds).
    #[arg(long, env = "DANBAO_ACQUIRE_TIMEOUT_MS", default_value_t = 5000)]
    acquire_timeout_ms: u64,
    /// Longest a query may run before PostgreSQL cancels it and the request answers 503
    /// `request_timeout` (milliseconds; 0: no limit).
    #[arg(long, env = "DANBAO_STATEMENT_TIMEOUT_MS", default_value_t = 30_000)]
    statement_timeout_ms: u64,
    /// Longest a request may take before it is stopped, its writes rolled back, and answered
    /// 503 `request_timeout` (milliseconds; 0: no limit). Repayment file uploads are exempt:
    /// their size bounds them, and each of their queries has the statement timeout.
    #[arg(long, env = "DANBAO_REQUEST_TIMEOUT_MS", default_value_t = 60_000)]
    request_timeout_ms: u64,
    /// Business time zone: what "today" means for value dates.
    #[arg(long, env = "DANBAO_TIMEZONE", default_value = "Asia/Shanghai")]
    timezone: chrono_tz::Tz,
    /// HS256 signing secret (at least 32 bytes). Generated if absent.
    #[arg(long, env = "DANBAO_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Token signing algorithm: HS256, EdDSA, ES256 or RS256.
    #[arg(long, env = "DANBAO_JWT_ALGORITHM", default_value = "HS256")]
    jwt_algorithm: String,
    /// PEM private key for a public-key algorithm.
    #[arg(long, env = "DANBAO_JWT_PRIVATE_KEY")]
    jwt_private_key: Option<PathBuf>,
    /// PEM public key for a public-key algorithm.
    #[arg(long, env = "DANBAO_JWT_PUBLIC_KEY")]
    jwt_public_key: Option<PathBuf>,
    /// Retired HS256 secrets, comma-separated: they still verify the tokens they signed (until
    /// those expire, 15 minutes) but sign nothing. For rotating DANBAO_JWT_SECRET.
    #[arg(long, env = "DANBAO_JWT_PREVIOUS_SECRETS", hide_env_values = true)]
    jwt_previous_secrets: Option<String>,
    /// Retired PEM public keys, comma-separated, each `ALG:path` or a path (of the current
    /// algorithm): verify-only, for rotating DANBAO_JWT_PRIVATE_KEY/PUBLIC_KEY.
    #[arg(long, env = "DANBAO_JWT_PREVIOUS_PUBLIC_KEYS")]
    jwt_previous_public_keys: Option<String>,
    /// Password of the `admin` created on a fresh database. Generated and printed if absent.
    #[arg(long, env = "DANBAO_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// Key for personal data at rest (64 hex digits). Kept in the data directory if absent
    /// and danbao runs its own cluster; required with DATABASE_URL.
    #[arg(long, env = "DANBAO_DATA_KEY", hide_env_values = true)]
    data_key: Option<String>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "DANBAO_LOG_JSON")]
    log_json: bool,
}

#[derive(Args)]
struct CreateUserArgs {
    #[arg(long)]
    username: String,
    #[arg(long, value_parser = parse_role)]
    role: Role,
    #[arg(long)]
    display_name: Option<String>,
    /// Centre of a clerk.
    #[arg(long)]
    centre_id: Option<uuid::Uuid>,
    /// Bank of a bank user.
    #[arg(long)]
    bank_id: Option<uuid::Uuid>,
    /// Region of a supervisor (GB/T 2260 code).
    #[arg(long)]
    region_code: Option<String>,
    #[arg(long, env = "DANBAO_NEW_USER_PASSWORD", hide_env_values = true)]
    password: Option<String>,
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| "one of admin, clerk, bank, supervisor".to_owned())
}

/// glibc raises its mmap threshold to the size of each large block freed (up to 32 MiB); from
/// then on argon2's 19 MiB blocks come from, and stay in, the arena of whichever blocking
/// thread hashed: 32 logins left an idle server at 169 MiB. A fixed threshold (setting it
/// stops the raising) maps such blocks and gives them back when they are freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn return_large_blocks() {
    // SAFETY: mallopt(3) only sets a parameter of the allocator; it runs before any other
    // thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_blocks() {}

fn main() -> std::process::ExitCode {
    return_large_blocks();
    let cli = Cli::parse();
    let json = matches!(&cli.command, Command::Serve(a) if a.log_json);
    telemetry::init_tracing(json);
    let result = if matches!(cli.command, Command::ImportRepayments(_)) {
        // A file's next chunk is planned on this thread while the database connection's task,
        // on the worker, keeps sending the chunk before it (on one thread the connection ran
        // only when the planning yielded, and the two ran in turn).
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(run(cli)))
    } else {
        actix_web::rt::System::new().block_on(run(cli))
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("danbao: {e:#}");
            if e.downcast_ref::<RowsFailed>().is_some() {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Openapi => {
            print!("{}", danbao_api::openapi::openapi_json());
            Ok(())
        }
        Command::Migrate => {
            let db = open_database(cli.db.database_url.as_deref(), &cli.db.data_dir).await?;
            let applied = migrate::run_pending(&db.url).await?;
            println!("applied {} migration(s)", applied.len());
            Ok(())
        }
        Command::LoadPolicyPresets => {
            let db = open_database(cli.db.database_url.as_deref(), &cli.db.data_dir).await?;
            migrate::run_pending(&db.url).await?;
            let loaded = bootstrap::load_presets(&db.url).await?;
            println!(
                "created: {:?}; already there: {:?}",
                loaded.created, loaded.existing
            );
            Ok(())
        }
        Command::CreateUser(a) => {
            let db = open_database(cli.db.database_url.as_deref(), &cli.db.data_dir).await?;
            migrate::run_pending(&db.url).await?;
            create_user(&db.url, a).await
        }
        Command::Verify(a) => {
            let db = open_database(cli.db.database_url.as_deref(), &cli.db.data_dir).await?;
            migrate::run_pending(&db.url).await?;
            let today = chrono::Utc::now().with_timezone(&a.timezone).date_naive();
            let report = danbao_api::verify::run_with(&db.url, today, a.rebuild_facts).await?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for c in &report.checks {
                    let mark = if c.failed == 0 { "ok  " } else { "FAIL" };
                    println!(
                        "{mark} {} ({} checked, {} failed)",
                        c.rule, c.checked, c.failed
                    );
                    for f in &c.failures {
                        println!("       {f}");
                    }
                }
            }
            if report.ok() {
                Ok(())
            } else {
                drop(db);
                std::process::exit(1);
            }
        }
        Command::Serve(a) => serve(cli.db, a).await,
        Command::ImportRepayments(a) => {
            let db = open_database(cli.db.database_url.as_deref(), &cli.db.data_dir).await?;
            migrate::run_pending(&db.url).await?;
            let result = import_repayments(&db.url, a).await;
            drop(db);
            result
        }
        Command::Demo(a) => demo(cli.db, a).await,
    }
}

async fn import_repayments(url: &str, a: ImportArgs) -> anyhow::Result<()> {
    use danbao_api::auth::{Principal, PrincipalKind, Scope};
    use danbao_api::context::RequestId;
    use danbao_api::error::ApiError;
    use danbao_api::routes::repayment_batches::{
        process_batch, BatchOutcome, BatchRequest, Format,
    };
    use danbao_persistence::diesel_async::{AsyncConnection, AsyncPgConnection};
    use danbao_persistence::repo;
    use std::io::Read;

    let mut conn = AsyncPgConnection::establish(url).await?;
    let bank = repo::bank::find_by_code(&mut conn, &a.bank)
        .await?
        .ok_or_else(|| anyhow::anyhow!("there is no bank with code {}", a.bank))?;
    let users = repo::repayment_batch::active_bank_users(&mut conn, bank.id).await?;
    let (user_id, username) = match &a.user {
        Some(u) => users
            .into_iter()
            .find(|(_, name)| *name == u.to_lowercase())
            .ok_or_else(|| anyhow::anyhow!("{u} is not an active bank user of bank {}", a.bank))?,
        None => users.into_iter().next().ok_or_else(|| {
            anyhow::anyhow!(
                "bank {} has no active bank user to act as; create one with \
                 `danbao create-user --role bank --bank-id {} --username ...`",
                a.bank,
                bank.id
            )
        })?,
    };
    let principal = Principal {
        kind: PrincipalKind::User,
        id: user_id,
        name: username,
        role: Role::Bank,
        scope: Scope::Bank(bank.id),
    };
    let file = std::fs::File::open(&a.file)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", a.file.display()))?;
    let size = file.metadata()?.len();
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(size),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {bytes}/{total_bytes} {msg}",
        )?
        .progress_chars("=> "),
    );
    let path = a.file.display().to_string();
    let chunks = futures_util::stream::unfold(Some(file), move |f| {
        let path = path.clone();
        async move {
            let mut f = f?;
            let mut buf = vec![0u8; 256 * 1024];
            match f.read(&mut buf) {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(actix_web::web::Bytes::from(buf)), Some(f)))
                }
                Err(e) => Some((
                    Err(ApiError::BadRequest {
                        code: "bad_body",
                        detail: format!("cannot read {path}: {e}"),
                        errors: vec![],
                    }),
                    None,
                )),
            }
        }
    });
    let request_id = RequestId(format!("cli-{}", uuid::Uuid::now_v7()));
    let today = chrono::Utc::now().with_timezone(&a.timezone).date_naive();
    let started = std::time::Instant::now();
    let outcome = process_batch(
        &mut conn,
        BatchRequest {
            principal: &principal,
            bank_id: bank.id,
            request_id: &request_id,
            format: Format::Csv,
            atomic: a.atomic,
            today,
            idem: None,
            idem_hasher: None,
            chunk_rows: a.chunk_rows,
            pending_loans: a.pending_loans,
        },
        Box::pin(chunks),
        &mut |p| {
            bar.set_position(p.bytes);
            bar.set_message(format!("{} rows", p.rows));
        },
    )
    .await;
    bar.finish_and_clear();
    let view = match outcome {
        Ok(BatchOutcome::Done(v)) => v,
        Ok(BatchOutcome::Replay(_)) => anyhow::bail!("unexpected replay"),
        Err(e) => {
            let p = e.to_problem();
            let fields: Vec<String> = p
                .errors
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect();
            anyhow::bail!(
                "{} ({}){}",
                p.detail,
                p.code,
                if fields.is_empty() {
                    String::new()
                } else {
                    format!(": {}", fields.join("; "))
                }
            );
        }
    };
    // The file's statistics deltas, rolled up now rather than by the next server tick.
    danbao_api::stats::roll_up(&mut conn).await?;
    let elapsed = started.elapsed();
    println!(
        "batch {} ({}, {}): {} rows, {} applied, {} duplicates, {} failed",
        view.id,
        view.status,
        if view.atomic { "atomic" } else { "row by row" },
        view.rows,
        view.applied,
        view.duplicates,
        view.failed
    );
    if view.failed > 0 {
        let failed =
            repo::repayment_batch::rows(&mut conn, view.id, None, Some("failed"), 10).await?;
        println!("first failed rows:");
        for r in failed.iter().take(10) {
            println!(
                "  row {} ({}): {} {}: {}",
                r.row_no,
                r.bank_reference,
                r.error_code.as_deref().unwrap_or(""),
                r.error_field.as_deref().unwrap_or("-"),
                r.error_message.as_deref().unwrap_or("")
            );
        }
    }
    let secs = elapsed.as_secs_f64();
    println!(
        "elapsed {secs:.1} s, {:.0} rows/s",
        if secs > 0.0 {
            f64::from(view.rows) / secs
        } else {
            0.0
        }
    );
    if view.failed > 0 {
        return Err(RowsFailed(view.failed).into());
    }
    Ok(())
}

async fn demo(db_args: DbArgs, a: DemoArgs) -> anyhow::Result<()> {
    let embedded = db_args
        .database_url
        .as_deref()
        .is_none_or(|u| u.trim().is_empty());
    let db = open_database(db_args.database_url.as_deref(), &db_args.data_dir).await?;
    migrate::run_pending(&db.url).await?;
    let pii = bootstrap::pii_keys(
        a.data_key.as_deref().filter(|k| !k.is_empty()),
        embedded.then_some(db_args.data_dir.as_path()),
    )?;
    let opts = danbao_api::demo::DemoOptions {
        seed: a.seed,
        loans: a.loans,
        from_year: a.from_year,
        today: chrono::Utc::now().with_timezone(&a.timezone).date_naive(),
        progress: true,
        verify: !a.no_verify,
        chunk: danbao_api::demo::CHUNK,
    };
    let s = danbao_api::demo::run(&db.url, &pii, &opts).await?;
    for (table, n) in &s.counts {
        println!("{table:>24} {n:>12}");
    }
    let verified = match s.verify_elapsed {
        Some(t) => format!("verify ok in {:.1} s", t.as_secs_f64()),
        None => "not verified (--no-verify): run `danbao verify`".to_owned(),
    };
    println!(
        "demo: {} loans in {:.1} s ({:.0} loans/s), principal {}; {verified}",
        a.loans,
        s.elapsed.as_secs_f64(),
        s.loans_per_second,
        s.principal_sum,
    );
    println!(
        "demo: users admin (if the database had none), clerk.<city>.1/.2, sup.jx, sup.<city>, bank.<code>; password: {}",
        danbao_api::demo::DEMO_PASSWORD
    );
    drop(db);
    Ok(())
}

async fn create_user(url: &str, a: CreateUserArgs) -> anyhow::Result<()> {
    use danbao_persistence::diesel_async::{AsyncConnection, AsyncPgConnection};
    let region_code = a
        .region_code
        .as_deref()
        .map(danbao_domain::RegionCode::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--region-code: {e}"))?;
    let body = danbao_api::routes::users::NewUserBody {
        display_name: a.display_name.unwrap_or_else(|| a.username.clone()),
        username: a.username,
        password: a.password,
        role: a.role,
        centre_id: a.centre_id,
        bank_id: a.bank_id,
        region_code,
    };
    let detail = serde_json::json!({ "username": body.username, "role": body.role.as_str() });
    let mut conn = AsyncPgConnection::establish(url).await?;
    let view = danbao_api::routes::users::create_user(&mut conn, body, |id| {
        bootstrap::system_event("create-user", "user.created", "user", id, detail)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{}", e.to_problem().detail))?;
    println!(
        "created user {} ({}) id {}",
        view.username, view.role, view.id
    );
    if let Some(p) = view.initial_password {
        println!("one-time password: {p}");
    }
    Ok(())
}

/// Moves the statistics rollups' pending deltas into the rollups every two seconds, so that
/// reads sum a few rows per cell and month (reads add the pending ones, so nothing waits on
/// this; it only keeps them few).
async fn roll_up_statistics(pool: danbao_persistence::pool::DbPool) {
    let mut every = tokio::time::interval(Duration::from_secs(2));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let moved = match pool.get().await {
            Ok(mut conn) => danbao_api::stats::roll_up(&mut conn).await,
            Err(e) => Err(e.into()),
        };
        match moved {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deltas = n, "statistics rolled up"),
            Err(e) => tracing::warn!(error = %e, "rolling up statistics failed"),
        }
    }
}

async fn serve(db_args: DbArgs, mut a: ServeArgs) -> anyhow::Result<()> {
    // An empty variable (`DANBAO_ADMIN_PASSWORD=`) means "not set", not an empty secret.
    for secret in [&mut a.admin_password, &mut a.jwt_secret, &mut a.data_key] {
        if secret.as_deref().is_some_and(|s| s.is_empty()) {
            *secret = None;
        }
    }
    let embedded = db_args
        .database_url
        .as_deref()
        .is_none_or(|u| u.trim().is_empty());
    let db = open_database(db_args.database_url.as_deref(), &db_args.data_dir).await?;
    let applied = migrate::run_pending(&db.url).await?;
    if !applied.is_empty() {
        tracing::info!(count = applied.len(), "migrations applied");
    }
    if let Some(p) = &a.admin_password {
        danbao_api::auth::check_password_strength(p)
            .map_err(|m| anyhow::anyhow!("DANBAO_ADMIN_PASSWORD {m}"))?;
    }
    if let Some(password) = bootstrap::ensure_admin(&db.url, a.admin_password.clone()).await? {
        // The one time a secret is printed: the first admin's generated password.
        println!("danbao: created user \"admin\" with one-time password: {password}");
        println!("danbao: log in with POST /v1/auth/token and change it with PUT /v1/me/password");
    }
    let jwt = bootstrap::jwt_keys(
        a.jwt_secret.as_deref(),
        &a.jwt_algorithm,
        a.jwt_private_key.as_deref(),
        a.jwt_public_key.as_deref(),
        embedded.then_some(db_args.data_dir.as_path()),
    )?;
    let jwt = bootstrap::with_previous_keys(
        jwt,
        a.jwt_previous_secrets.as_deref(),
        a.jwt_previous_public_keys.as_deref(),
        &a.jwt_algorithm,
    )?;
    let pii = bootstrap::pii_keys(
        a.data_key.as_deref(),
        embedded.then_some(db_args.data_dir.as_path()),
    )?;
    let acquire_timeout = Duration::from_millis(a.acquire_timeout_ms);
    let statement_timeout =
        (a.statement_timeout_ms > 0).then(|| Duration::from_millis(a.statement_timeout_ms));
    let pool = pool::build_pool_with(&db.url, a.pool_size, acquire_timeout, statement_timeout)?;
    let read_pool = a
        .database_read_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
        .map(|u| pool::build_pool_with(u, a.pool_size, acquire_timeout, statement_timeout))
        .transpose()?;
    tokio::spawn(roll_up_statistics(pool.clone()));
    let state = AppState {
        pool,
        read_pool,
        jwt,
        timezone: a.timezone,
        metrics: telemetry::metrics_handle(),
        pii,
        login: danbao_api::state::LoginLimits {
            per_account: a.login_max_failures,
            per_address: a.login_max_failures_per_address,
            window: Duration::from_secs(a.login_lock_seconds),
        },
        active: danbao_api::state::ActiveCache::default(),
        limits: danbao_api::ratelimit::RateLimits {
            bank: RateLimiter::per_second(a.bank_rate_per_second, a.bank_rate_burst),
            token: RateLimiter::per_minute(a.token_rate_per_minute, a.token_rate_burst),
        },
    };
    let listener = TcpListener::bind(&a.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", a.listen))?;
    let app = startup::build(
        state,
        listener,
        &ServerOptions {
            workers: a.workers,
            request_timeout: (a.request_timeout_ms > 0)
                .then(|| Duration::from_millis(a.request_timeout_ms)),
            ..Default::default()
        },
    )?;
    println!(
        "danbao: listening on http://{} (API docs at /docs)",
        app.addr()
    );
    app.run().await?;
    tracing::info!("HTTP server stopped");
    // Dropping the database stops the local cluster, after the last request has finished.
    drop(db);
    Ok(())
}
