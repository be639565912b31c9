//! The command line. Commands that print data accept `--json` and then
//! print exactly one JSON object on stdout; errors go to stderr with a
//! non-zero exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};
use signet_app::audit::Verification;
use signet_app::{Actor, Origin};
use signet_core::user::{NewUser, User, UserId, UserStatus};

use crate::config::Config;
use crate::wiring::{wire, Wired};

#[derive(Parser, Debug)]
#[command(
    name = "signet",
    version,
    about = "Signet: a self-hosted passwordless identity server"
)]
pub struct Cli {
    /// Configuration file (TOML). Defaults to $SIGNET_CONFIG, else built-in defaults.
    #[arg(long, global = true, env = "SIGNET_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print exactly one JSON object on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage admin API tokens.
    #[command(subcommand, name = "admin-token")]
    AdminToken(AdminTokenCmd),
    /// Work with the audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Check, write and explain policies.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Manage the keys that seal secrets at rest.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Operate the outbox of queued email and SMS.
    #[command(subcommand)]
    Outbox(OutboxCmd),
    /// Manage OpenID Connect clients (relying parties).
    #[command(subcommand)]
    Client(ClientCmd),
    /// Help-desk recovery tickets, as the admin API's
    /// `/api/v1/admin/recovery-tickets`. Acts as the admin token in
    /// $SIGNET_ADMIN_TOKEN (each token is one person: its ceiling applies,
    /// and it counts once on a ticket). Never prints a link.
    #[command(subcommand, name = "recovery-ticket")]
    RecoveryTicket(TicketCmd),
}

#[derive(Subcommand, Debug)]
pub enum TicketCmd {
    /// Open a ticket for a user (email or id). Prints `{"id", "status", "approvals_required", "expires_at"}`.
    Create {
        user: String,
        /// Why the person needs the help desk.
        #[arg(long)]
        reason: String,
        /// What was checked: video_call, id_document, manager_confirmation, ...
        #[arg(long = "evidence-kind")]
        evidence_kind: String,
        /// Where the record of it is (a case or call number; never the evidence itself).
        #[arg(long = "evidence-reference")]
        evidence_reference: String,
    },
    /// Approve a ticket as one more person. Prints `{"status"}`.
    Approve { id: String },
    /// List tickets, newest first. Prints `{"tickets": [...]}`.
    List {
        /// Only this user's tickets (email or id).
        #[arg(long)]
        user: Option<String>,
    },
}

/// The admin token a help-desk command acts as: read from the environment
/// (never an argument, which other local users could read in the process
/// list) and authenticated exactly like an API bearer token.
async fn staff_actor(wired: &Wired) -> anyhow::Result<Actor> {
    let presented = std::env::var(crate::config::ADMIN_TOKEN_ENV).map_err(|_| {
        signet_core::Error::invalid(
            signet_core::ErrorCode::InvalidRequest,
            "set SIGNET_ADMIN_TOKEN to your own admin token: help-desk commands act as one person",
        )
    })?;
    Ok(signet_app::admin::authenticate(&wired.app, presented.trim()).await?)
}

async fn ticket_command(wired: &Wired, cmd: TicketCmd, json_mode: bool) -> anyhow::Result<ExitCode> {
    let app = &wired.app;
    let actor = staff_actor(wired).await?;
    let origin = Origin::default();
    match cmd {
        TicketCmd::Create {
            user,
            reason,
            evidence_kind,
            evidence_reference,
        } => {
            let u = find_user(wired, &user).await?;
            let new = signet_app::recovery_tickets::NewTicket {
                user_id: u.id,
                reason,
                evidence_kind,
                evidence_reference,
            };
            let t = signet_app::recovery_tickets::create(app, &actor, &origin, new).await?;
            deliver_now(wired).await;
            emit(
                json_mode,
                json!({
                    "id": t.id,
                    "status": t.status.as_str(),
                    "approvals_required": t.approvals_required,
                    "expires_at": t.expires_at.to_rfc3339(),
                }),
                || {
                    format!(
                        "ticket {} {} (people required: {})",
                        t.id,
                        t.status.as_str(),
                        t.approvals_required
                    )
                },
            );
        }
        TicketCmd::Approve { id } => {
            let id = uuid::Uuid::parse_str(id.trim()).map_err(|_| {
                signet_core::Error::not_found(signet_core::ErrorCode::TicketNotFound, "no such recovery ticket")
            })?;
            let status = signet_app::recovery_tickets::approve(app, &actor, &origin, id).await?;
            deliver_now(wired).await;
            emit(json_mode, json!({ "status": status.as_str() }), || {
                format!("ticket {id} {}", status.as_str())
            });
        }
        TicketCmd::List { user } => {
            let user = match user {
                Some(u) => Some(find_user(wired, &u).await?.id),
                None => None,
            };
            let tickets = signet_app::recovery_tickets::list(app, &actor, user).await?;
            let rows: Vec<Value> = tickets
                .iter()
                .map(|(t, people)| signet_app::recovery_tickets::view(t, people))
                .collect();
            emit(json_mode, json!({ "tickets": rows }), || {
                tickets
                    .iter()
                    .map(|(t, people)| {
                        format!(
                            "{}  user={}  {}  people={}/{}  expires={}",
                            t.id,
                            t.user_id,
                            t.status.as_str(),
                            people.len(),
                            t.approvals_required,
                            t.expires_at.to_rfc3339()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Tries to deliver what a command queued (an approved ticket's link)
/// right away; if delivery fails it stays queued for `signet serve`.
async fn deliver_now(wired: &Wired) {
    let worker = wired.app.courier.worker(wired.delivery.clone(), Default::default());
    worker.run_once().await;
}

#[derive(Subcommand, Debug)]
pub enum ClientCmd {
    /// Register a client. Prints `{"client_id", "client_secret"?}`; the
    /// secret is shown once and stored only as a hash. A `--public` client
    /// gets no secret and must use PKCE.
    Add {
        /// A name shown to users (consent, the account page) and in the audit log.
        name: String,
        /// An exact redirect URI (repeat for several).
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// A public client (no secret; PKCE required): a single-page or native app.
        #[arg(long)]
        public: bool,
        /// Also allow the client_credentials grant (confidential clients only).
        #[arg(long)]
        client_credentials: bool,
        /// A first-party app: no consent screen.
        #[arg(long)]
        first_party: bool,
        /// An exact URI RP-initiated logout may send the browser back to
        /// (repeat for several).
        #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
        post_logout_redirect_uris: Vec<String>,
        /// Where Signet POSTs back-channel logout tokens when a user's
        /// session ends.
        #[arg(long = "backchannel-logout-uri", value_name = "URI")]
        backchannel_logout_uri: Option<String>,
    },
    /// List registered clients.
    List,
    /// Show one client (never its secret). Prints the client object.
    Show {
        /// A client id may start with `-` (one generated before
        /// 2026-11-27 could): it is read as the id, not as an option.
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Change a client's settings (clients of `[[oidc.clients]]` are changed
    /// in the file). Prints the client object.
    Update {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        #[arg(long)]
        name: Option<String>,
        /// Replaces the redirect URIs (repeat for several).
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// Replaces the scopes the client may ask for (repeat for several).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Replaces the grant types (authorization_code, refresh_token, client_credentials).
        #[arg(long = "grant-type", value_name = "GRANT")]
        grant_types: Vec<String>,
        /// First-party (no consent screen) or not.
        #[arg(long, value_name = "BOOL")]
        first_party: Option<bool>,
        #[arg(long, value_name = "SECS")]
        id_token_ttl_secs: Option<u64>,
        #[arg(long, value_name = "SECS")]
        access_token_ttl_secs: Option<u64>,
        #[arg(long, value_name = "SECS")]
        refresh_token_ttl_secs: Option<u64>,
        /// The lowest assurance a sign-in into this client needs (aal1, aal2, aal3).
        #[arg(long, value_name = "AAL")]
        min_aal: Option<String>,
        /// Whether sign-ins into this client need a phishing-resistant method.
        #[arg(long, value_name = "BOOL")]
        phishing_resistant: Option<bool>,
        /// The oldest authentication this client accepts, in seconds.
        #[arg(long, value_name = "SECS")]
        max_auth_age_secs: Option<u64>,
        /// The algorithm of the client's ID tokens: ES256 (default) or RS256.
        #[arg(long, value_name = "ALG")]
        id_token_alg: Option<String>,
    },
    /// Delete a client and revoke everything it was granted.
    Delete {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Give a confidential client a new secret (shown once); the old one
    /// keeps working for the grace period. Prints `{"client_id",
    /// "client_secret", "previous_secret_expires_at"}`.
    #[command(name = "rotate-secret")]
    RotateSecret {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        /// Seconds the old secret stays valid (default 86400; 0 ends it now).
        #[arg(long, value_name = "SECS")]
        grace_secs: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum OutboxCmd {
    /// Make every queued message due now (after a relay outage, instead of
    /// waiting out the backoff). Running servers send them within their
    /// poll interval (2 s). Prints `{"rescheduled": N}`.
    Retry,
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Re-seal every sealed value under the current sealing key.
    ///
    /// With a configured `[sealing] key`: set the new key as `key`, move the
    /// old one to `previous_keys`, restart the nodes, then run this. With the
    /// key file: this generates a new key, makes it current (the old one
    /// stays in the file as a previous key), then re-seals. See
    /// docs/operations.md.
    #[command(name = "rotate-sealing")]
    RotateSealing {
        /// Key file only: do not generate a new key, just re-seal under the
        /// current one (e.g. after an interrupted run).
        #[arg(long)]
        reseal_only: bool,
    },
    /// Rotate the OpenID Provider's signing keys (ES256 and RS256).
    ///
    /// The new keys are published in the JWK Set at once and start signing
    /// after the publish delay; the keys they replace stay published for
    /// the grace period after that (at least the longest ID or access token
    /// lifetime of any client), then retire. Running servers pick the new
    /// keys up within a minute. Prints `{"keys": [...]}`.
    Rotate {
        /// Seconds between now and the new keys signing (at least 360: the
        /// nodes' reload interval plus the JWK Set's cache lifetime).
        #[arg(long, default_value_t = 600)]
        publish_delay_secs: u64,
        /// Seconds the replaced keys stay published after the new ones
        /// start signing (raised to the longest token lifetime if shorter).
        #[arg(long, default_value_t = 3600)]
        grace_secs: u64,
    },
    /// List the OpenID Provider's published signing keys and their state
    /// (`next`, `signing`, `retiring`). Prints `{"keys": [...]}`.
    List,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCmd {
    /// Report threat-model findings and the decision matrix; exits 1 on any error finding.
    Check {
        /// Policy file (default: the configured `policy`, else the built-in policy).
        file: Option<PathBuf>,
    },
    /// Write one of the three deployment patterns as a commented policy file.
    Init {
        #[arg(long, value_parser = ["passkey-first", "magic-link-with-step-up", "otp-transitional"])]
        pattern: String,
        /// Write here instead of stdout (refuses to overwrite).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Show a user's effective tier, what it allows, and why.
    Explain { user: String },
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user.
    Add(UserAdd),
    /// List users (ordered by email).
    List {
        /// Start after this email (paging).
        #[arg(long)]
        after: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Show one user, by email or id.
    Show { user: String },
    /// Disable a user and end all their sessions.
    Disable { user: String },
    /// Re-enable a disabled user.
    Enable { user: String },
    /// Send an invitation email; prints the link.
    Invite { user: String },
}

#[derive(Args, Debug)]
pub struct UserAdd {
    pub email: String,
    /// A role (repeatable); roles decide the user's risk tier.
    #[arg(long = "role", value_name = "R")]
    pub roles: Vec<String>,
    /// Phone number in E.164, e.g. +14155550100: a contact for security
    /// notices, never a way to sign in (the user adds and confirms a phone
    /// for SMS codes themselves).
    #[arg(long)]
    pub phone: Option<String>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum AdminTokenCmd {
    /// Create a token; it is shown once.
    Create {
        name: String,
        /// Highest policy tier this token may act on in help-desk recovery
        /// (tickets); default: no limit.
        #[arg(long)]
        ceiling: Option<String>,
    },
    /// List token names.
    List,
    /// Revoke a token by name.
    Revoke { name: String },
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Verify the hash chain; exits non-zero and names the first bad record if broken.
    Verify,
}

/// Prints `value` as JSON, or `human` otherwise.
pub(crate) fn emit(json_mode: bool, value: Value, human: impl FnOnce() -> String) {
    if json_mode {
        println!("{value}");
    } else {
        println!("{}", human());
    }
}

fn fail(json_mode: bool, code: &str, message: &str) -> ExitCode {
    if json_mode {
        println!("{}", json!({ "error": code, "message": message }));
    }
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// The error and its causes, each once, joined with `": "`.
///
/// Libraries disagree on whether a message repeats its cause (sqlx's
/// "error returned from database: {cause}" also returns the cause as its
/// source), so a cause whose text is already printed is skipped. OS errors
/// get what an operator needs to act: a full disk is called that, and "too
/// many open files" gives the limit.
pub fn describe<'a>(chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>) -> String {
    let mut out = String::new();
    for cause in chain {
        let mut text = cause.to_string();
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            text = explain_io(io, text);
        }
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Adds what the OS's wording leaves out.
fn explain_io(e: &std::io::Error, text: String) -> String {
    match e.raw_os_error() {
        // EMFILE
        Some(24) => match crate::connections::open_file_limit() {
            Some(limit) => format!(
                "{text}: too many open files (this process may have {limit}; raise LimitNOFILE or ulimit -n, \
                 or lower limits.max_connections)"
            ),
            None => format!("{text}: too many open files"),
        },
        // ENFILE
        Some(23) => format!("{text}: the system-wide table of open files is full"),
        // ENOSPC, EDQUOT
        Some(28) | Some(122) => format!("disk full: {text}"),
        // EROFS
        Some(30) => format!("{text}: the file system is mounted read-only"),
        _ => text,
    }
}

pub async fn run(cli: Cli) -> ExitCode {
    let config = match Config::from_env_and_file(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(cli.json, "config_error", &e.to_string()),
    };
    crate::logging::init(&config, matches!(cli.command, Command::Serve));
    let json_mode = cli.json;
    let result = match cli.command {
        Command::Serve => crate::server::serve(&config).await.map(|_| ExitCode::SUCCESS),
        Command::Migrate => migrate(&config, json_mode).await,
        Command::Policy(PolicyCmd::Check { file }) => crate::policy_cli::check(&config, file.as_deref(), json_mode),
        Command::Policy(PolicyCmd::Init { pattern, output }) => {
            crate::policy_cli::init(&pattern, output.as_deref(), json_mode)
        }
        other => match wire(&config, None, Vec::new()).await {
            Ok(wired) => {
                let r = dispatch(&wired, other, json_mode).await;
                wired.store.close().await;
                r
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(code) => code,
        // The operator runs the CLI: show the whole cause, including what a
        // remote client would only see as "internal error".
        Err(e) => match e.downcast_ref::<signet_core::Error>() {
            Some(domain) => fail(json_mode, domain.code().as_str(), &describe(e.chain())),
            None => fail(json_mode, "failed", &describe(e.chain())),
        },
    }
}

async fn migrate(config: &Config, json_mode: bool) -> anyhow::Result<ExitCode> {
    let store = signet_store::SqlStore::connect(&config.database.url).await?;
    store.close().await;
    emit(json_mode, json!({ "status": "migrated" }), || {
        "database is up to date".into()
    });
    Ok(ExitCode::SUCCESS)
}

async fn find_user(wired: &Wired, key: &str) -> anyhow::Result<User> {
    let app = &wired.app;
    Ok(match uuid::Uuid::parse_str(key) {
        Ok(id) => signet_app::users::get(app, UserId(id)).await?,
        Err(_) => signet_app::users::find_by_email(app, key).await?,
    })
}

fn user_line(u: &User) -> String {
    format!(
        "{}  {}  {}  roles=[{}]",
        u.id,
        u.email,
        u.status.as_str(),
        u.roles.join(",")
    )
}

async fn dispatch(wired: &Wired, cmd: Command, json_mode: bool) -> anyhow::Result<ExitCode> {
    let app = &wired.app;
    let actor = Actor::Cli;
    let origin = Origin::default();
    match cmd {
        Command::Serve | Command::Migrate | Command::Policy(PolicyCmd::Check { .. } | PolicyCmd::Init { .. }) => {
            Ok(ExitCode::SUCCESS)
        }
        Command::RecoveryTicket(cmd) => ticket_command(wired, cmd, json_mode).await,
        Command::Policy(PolicyCmd::Explain { user }) => {
            let u = find_user(wired, &user).await?;
            crate::policy_cli::explain(app, &u, json_mode);
            Ok(ExitCode::SUCCESS)
        }
        Command::User(UserCmd::Add(a)) => {
            let new = NewUser::parse(&a.email, a.phone.as_deref(), a.name.as_deref(), &a.roles)?;
            let user = signet_app::users::create(app, &actor, &origin, new).await?;
            emit(
                json_mode,
                json!({ "id": user.id, "email": user.email, "roles": user.roles }),
                || format!("created user {} ({})", user.email, user.id),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::User(UserCmd::List { after, limit }) => {
            let users = signet_app::users::list(app, after.as_deref(), limit).await?;
            emit(json_mode, json!({ "users": users }), || {
                users.iter().map(user_line).collect::<Vec<_>>().join("\n")
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::User(UserCmd::Show { user }) => {
            let u = find_user(wired, &user).await?;
            emit(json_mode, json!(u), || user_line(&u));
            Ok(ExitCode::SUCCESS)
        }
        Command::User(UserCmd::Disable { user }) => set_status(wired, &user, UserStatus::Disabled, json_mode).await,
        Command::User(UserCmd::Enable { user }) => set_status(wired, &user, UserStatus::Active, json_mode).await,
        Command::User(UserCmd::Invite { user }) => {
            let u = find_user(wired, &user).await?;
            let issued = signet_app::invitations::invite(app, &actor, &origin, u.id).await?;
            // Try to deliver right away; if the mail server is down the
            // message stays queued and `signet serve` keeps retrying.
            let worker = app.courier.worker(wired.delivery.clone(), Default::default());
            worker.run_once().await;
            let delivered = app
                .store
                .message(issued.message_id)
                .await
                .ok()
                .flatten()
                .map(|m| m.status == signet_core::outbox::DeliveryStatus::Sent)
                .unwrap_or(false);
            if !delivered {
                eprintln!("warning: the invitation is queued but not delivered yet; `signet serve` will retry");
            }
            emit(
                json_mode,
                json!({ "link": issued.link, "expires_at": issued.expires_at.to_rfc3339(), "delivered": delivered }),
                || {
                    format!(
                        "invitation sent to {}\nlink: {}\nexpires: {}",
                        u.email, issued.link, issued.expires_at
                    )
                },
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Client(ClientCmd::Add {
            name,
            redirect_uris,
            public,
            client_credentials,
            first_party,
            post_logout_redirect_uris,
            backchannel_logout_uri,
        }) => {
            use signet_core::oidc_client::{ClientSettings, GrantType};
            let mut grant_types = Vec::new();
            if !redirect_uris.is_empty() {
                grant_types.push(GrantType::AuthorizationCode);
            }
            if client_credentials {
                grant_types.push(GrantType::ClientCredentials);
            }
            let new = signet_app::oidc::clients::NewClient {
                name,
                public,
                settings: ClientSettings {
                    redirect_uris,
                    grant_types,
                    first_party,
                    post_logout_redirect_uris,
                    backchannel_logout_uri,
                    ..Default::default()
                },
            };
            let (client, secret) = signet_app::oidc::clients::register(
                app,
                &actor,
                &origin,
                new,
                signet_core::oidc_client::ClientSource::Cli,
            )
            .await?;
            let mut out = json!({ "client_id": client.client_id });
            if let (Some(secret), Some(obj)) = (&secret, out.as_object_mut()) {
                obj.insert("client_secret".into(), secret.expose_secret().into());
            }
            emit(json_mode, out, || match &secret {
                Some(s) => format!(
                    "client_id: {}\nclient_secret: {}\n(the secret is shown once: store it now)",
                    client.client_id,
                    s.expose_secret()
                ),
                None => format!("client_id: {} (public client: PKCE required)", client.client_id),
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Client(ClientCmd::List) => {
            let clients = app.store.list_oidc_clients().await.map_err(signet_core::Error::from)?;
            let rows: Vec<Value> = clients
                .iter()
                .map(|c| {
                    json!({
                        "client_id": c.client_id,
                        "name": c.name,
                        "public": c.is_public(),
                        "source": c.source.as_str(),
                        "redirect_uris": c.settings.redirect_uris,
                        "grant_types": c.settings.grant_types,
                        "created_at": c.created_at.to_rfc3339(),
                    })
                })
                .collect();
            emit(json_mode, json!({ "clients": rows }), || {
                clients
                    .iter()
                    .map(|c| format!("{}  {}  {}", c.client_id, c.name, c.source.as_str()))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Client(ClientCmd::Show { client_id }) => {
            let client = signet_app::oidc::clients::get(app, &client_id).await?;
            let view = signet_app::oidc::clients::view(&client);
            emit(json_mode, view.clone(), || {
                serde_json::to_string_pretty(&view).unwrap_or_default()
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Client(ClientCmd::Update {
            client_id,
            name,
            redirect_uris,
            scopes,
            grant_types,
            first_party,
            id_token_ttl_secs,
            access_token_ttl_secs,
            refresh_token_ttl_secs,
            min_aal,
            phishing_resistant,
            max_auth_age_secs,
            id_token_alg,
        }) => {
            use signet_core::oidc_client::GrantType;
            let grant_types = grant_types
                .iter()
                .map(|g| GrantType::parse(g).ok_or_else(|| anyhow::anyhow!("unknown grant type {g:?}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let assurance = if min_aal.is_some() || phishing_resistant.is_some() || max_auth_age_secs.is_some() {
                let mut a = signet_app::oidc::clients::get(app, &client_id)
                    .await?
                    .settings
                    .assurance;
                if let Some(aal) = &min_aal {
                    a.min_aal = Some(
                        signet_core::session::Aal::parse(aal)
                            .ok_or_else(|| anyhow::anyhow!("--min-aal is aal1, aal2 or aal3"))?,
                    );
                }
                if let Some(p) = phishing_resistant {
                    a.phishing_resistant = p;
                }
                if let Some(age) = max_auth_age_secs {
                    a.max_auth_age_secs = Some(age);
                }
                Some(a)
            } else {
                None
            };
            let nonempty = |v: Vec<String>| (!v.is_empty()).then_some(v);
            let changes = signet_app::oidc::clients::ClientChanges {
                name,
                redirect_uris: nonempty(redirect_uris),
                scopes: nonempty(scopes),
                grant_types: (!grant_types.is_empty()).then_some(grant_types),
                first_party,
                id_token_ttl_secs,
                access_token_ttl_secs,
                refresh_token_ttl_secs,
                assurance,
                id_token_signed_response_alg: id_token_alg,
                ..Default::default()
            };
            let client = signet_app::oidc::clients::update(app, &actor, &origin, &client_id, changes).await?;
            let view = signet_app::oidc::clients::view(&client);
            emit(json_mode, view, || format!("updated {client_id}"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Client(ClientCmd::Delete { client_id }) => {
            signet_app::oidc::clients::delete(app, &actor, &origin, &client_id).await?;
            emit(json_mode, json!({ "deleted": client_id }), || {
                format!("deleted {client_id}; its grants are revoked")
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Client(ClientCmd::RotateSecret { client_id, grace_secs }) => {
            let grace = grace_secs.map(std::time::Duration::from_secs);
            let (client, secret) =
                signet_app::oidc::clients::rotate_secret(app, &actor, &origin, &client_id, grace).await?;
            let until = client.previous_secret.as_ref().map(|p| p.expires_at.to_rfc3339());
            emit(
                json_mode,
                json!({ "client_id": client.client_id, "client_secret": secret.expose_secret(), "previous_secret_expires_at": until }),
                || {
                    format!(
                        "client_secret: {}\n(shown once: store it now; the old secret works until {})",
                        secret.expose_secret(),
                        until.clone().unwrap_or_default()
                    )
                },
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::AdminToken(AdminTokenCmd::Create { name, ceiling }) => {
            let (token, plain) =
                signet_app::admin::create_token_with_ceiling(app, &actor, &origin, &name, ceiling.as_deref()).await?;
            emit(
                json_mode,
                json!({ "token": plain.expose_secret(), "name": token.name }),
                || format!("{}\n(shown once: store it now)", plain.expose_secret()),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::AdminToken(AdminTokenCmd::List) => {
            let tokens = app.store.list_admin_tokens().await.map_err(signet_core::Error::from)?;
            let rows: Vec<Value> = tokens
                .iter()
                .map(|t| {
                    json!({
                        "name": t.name,
                        "created_at": t.created_at.to_rfc3339(),
                        "revoked_at": t.revoked_at.map(|r| r.to_rfc3339()),
                        "ceiling": t.ceiling,
                    })
                })
                .collect();
            emit(json_mode, json!({ "tokens": rows }), || {
                tokens
                    .iter()
                    .map(|t| {
                        format!(
                            "{}  {}",
                            t.name,
                            if t.revoked_at.is_some() { "revoked" } else { "active" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::AdminToken(AdminTokenCmd::Revoke { name }) => {
            signet_app::admin::revoke_token(app, &actor, &origin, &name).await?;
            emit(json_mode, json!({ "revoked": name }), || format!("revoked {name}"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(KeysCmd::RotateSealing { reseal_only }) => rotate_sealing(wired, reseal_only, json_mode).await,
        Command::Keys(KeysCmd::Rotate {
            publish_delay_secs,
            grace_secs,
        }) => {
            use signet_app::oidc::keys;
            use std::time::Duration;
            let publish_delay = Duration::from_secs(publish_delay_secs);
            let floor = keys::RELOAD_INTERVAL + keys::JWKS_MAX_AGE;
            if publish_delay < floor {
                anyhow::bail!(
                    "--publish-delay-secs must be at least {}: every node and every cached JWK Set must see the new key before it signs",
                    floor.as_secs()
                );
            }
            let clients = app.store.list_oidc_clients().await.map_err(signet_core::Error::from)?;
            let grace = keys::minimum_grace(&clients).max(Duration::from_secs(grace_secs));
            let rotated = keys::rotate(
                &*wired.store,
                &wired.sealing.ring,
                &actor,
                app.clock.now(),
                publish_delay,
                grace,
            )
            .await?;
            emit(json_mode, json!({ "keys": rotated }), || {
                rotated
                    .iter()
                    .map(|k| {
                        format!(
                            "{} {} (generation {}) signs from {}; the key it replaces retires at {}",
                            k.alg,
                            k.kid,
                            k.generation,
                            k.activates_at.to_rfc3339(),
                            k.previous_retires_at.to_rfc3339()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(KeysCmd::List) => {
            let set = signet_app::oidc::keys::KeySet::load(&*wired.store, &wired.sealing.ring, app.clock.now()).await?;
            let keys = set.describe_at(app.clock.now());
            emit(json_mode, json!({ "keys": keys }), || {
                keys.iter()
                    .map(|k| {
                        format!(
                            "{}  {}  v{}  {}",
                            k["alg"].as_str().unwrap_or(""),
                            k["kid"].as_str().unwrap_or(""),
                            k["generation"],
                            k["state"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Outbox(OutboxCmd::Retry) => {
            let rescheduled = signet_app::outbox::retry_now(app, &actor, &origin).await?;
            emit(json_mode, json!({ "rescheduled": rescheduled }), || {
                format!("{rescheduled} queued message(s) are due now; running servers send them within seconds")
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(AuditCmd::Verify) => match app.audit().verify().await? {
            Verification::Intact { records } => {
                emit(json_mode, json!({ "status": "intact", "records": records }), || {
                    format!("audit log intact: {records} records verified")
                });
                Ok(ExitCode::SUCCESS)
            }
            Verification::Broken(e) => {
                emit(json_mode, json!({ "status": "broken", "error": e.to_string() }), || {
                    format!("AUDIT LOG BROKEN: {e}")
                });
                Ok(ExitCode::from(3))
            }
        },
    }
}

async fn set_status(wired: &Wired, key: &str, status: UserStatus, json_mode: bool) -> anyhow::Result<ExitCode> {
    let u = find_user(wired, key).await?;
    let u = signet_app::users::set_status(&wired.app, &Actor::Cli, &Origin::default(), u.id, status).await?;
    emit(json_mode, json!(u), || {
        format!("{} is now {}", u.email, u.status.as_str())
    });
    Ok(ExitCode::SUCCESS)
}

/// `signet keys rotate-sealing`: rotates the key file if that is where the
/// keys live, then re-seals every value under the current key. Safe to run
/// while servers run, and more than once: each row is a compare-and-swap.
async fn rotate_sealing(wired: &Wired, reseal_only: bool, json_mode: bool) -> anyhow::Result<ExitCode> {
    use crate::sealing::KeySource;
    let mut ring = wired.sealing.ring.clone();
    let mut generated = false;
    let key_file = match &wired.sealing.source {
        KeySource::File(path) => {
            if !reseal_only {
                ring = std::sync::Arc::new(crate::sealing::rotate_key_file(path, &ring)?);
                generated = true;
            }
            Some(path.display().to_string())
        }
        KeySource::Config => None,
        KeySource::Ephemeral => anyhow::bail!("the database is in memory: there is nothing to rotate"),
    };
    let report = signet_app::sealing::reseal_all(&*wired.store, &ring, Actor::Cli, wired.app.clock.now()).await?;
    let source = if key_file.is_some() { "file" } else { "config" };
    let value = json!({
        "key_source": source,
        "key_file": key_file,
        "generated_key": generated,
        "current_key_id": report.current_key_id,
        "previous_key_ids": report.previous_key_ids,
        "resealed": report.resealed,
        "already_current": report.already_current,
        "failed": report.failed,
    });
    emit(json_mode, value, || {
        let mut lines = Vec::new();
        if let Some(path) = &key_file {
            if generated {
                lines.push(format!(
                    "generated sealing key {} in {path} (previous keys kept: {}); restart running servers to use it",
                    report.current_key_id,
                    report.previous_key_ids.join(", ")
                ));
            }
        }
        lines.push(format!(
            "re-sealed {} value(s) under key {}; {} already current",
            report.resealed.len(),
            report.current_key_id,
            report.already_current.len()
        ));
        lines.extend(report.resealed.iter().map(|v| format!("  re-sealed {v}")));
        lines.extend(
            report
                .failed
                .iter()
                .map(|f| format!("  FAILED {}: {}", f.value, f.error)),
        );
        if report.complete() {
            lines.push(
                "every value opens with the current key; previous keys can be removed once every node runs with \
                 this key and a final run re-seals nothing"
                    .into(),
            );
        }
        lines.join("\n")
    });
    Ok(if report.complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::describe;
    use super::{Cli, ClientCmd, Command};
    use clap::Parser;

    /// A client id that starts with `-` is the id, and the options after
    /// it are still options.
    #[test]
    fn a_client_id_starting_with_a_dash_is_read_as_the_id() {
        let cli = Cli::try_parse_from(["signet", "client", "show", "-BfQ2x", "--json"]).unwrap();
        assert!(cli.json);
        assert!(matches!(cli.command, Command::Client(ClientCmd::Show { client_id }) if client_id == "-BfQ2x"));
        let cli = Cli::try_parse_from(["signet", "client", "update", "-R9k", "--name", "Reports", "--json"]).unwrap();
        assert!(cli.json);
        assert!(matches!(
            cli.command,
            Command::Client(ClientCmd::Update { client_id, name: Some(name), .. }) if client_id == "-R9k" && name == "Reports"
        ));
        let cli = Cli::try_parse_from(["signet", "client", "rotate-secret", "-x", "--grace-secs", "0"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Client(ClientCmd::RotateSecret { client_id, grace_secs: Some(0) }) if client_id == "-x"
        ));
        let cli = Cli::try_parse_from(["signet", "client", "delete", "-x"]).unwrap();
        assert!(matches!(cli.command, Command::Client(ClientCmd::Delete { client_id }) if client_id == "-x"));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open the SQLite database /srv/signet.db")]
    struct Outer(#[source] Middle);

    /// Repeats its source in its own text, as sqlx's errors do.
    #[derive(Debug, thiserror::Error)]
    #[error("error returned from database: {0}")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn each_cause_is_printed_once() {
        let e = anyhow::Error::new(Outer(Middle(std::io::Error::other("unable to open database file"))));
        assert_eq!(
            describe(e.chain()),
            "cannot open the SQLite database /srv/signet.db: error returned from database: unable to open database file"
        );
    }

    #[test]
    fn a_full_disk_and_too_many_open_files_say_so() {
        let full = anyhow::Error::new(std::io::Error::from_raw_os_error(28)).context("writing /srv/x");
        let text = describe(full.chain());
        assert!(text.starts_with("writing /srv/x: disk full: "), "{text}");
        let emfile = anyhow::Error::new(std::io::Error::from_raw_os_error(24));
        let text = describe(emfile.chain());
        assert!(text.contains("too many open files"), "{text}");
        if crate::connections::open_file_limit().is_some() {
            assert!(text.contains("this process may have"), "names the limit: {text}");
        }
    }
}
