//! `onebox`: the OpenStack compute stack in one binary on one host.

mod config;
mod init;
mod serve;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use config::Config;

#[derive(Parser)]
#[command(
    name = "onebox",
    version,
    about = "The OpenStack compute stack in one binary on one host"
)]
struct Cli {
    /// Configuration file [default: /etc/onebox/onebox.toml when it exists]
    #[arg(long, global = true, env = "ONEBOX_CONFIG")]
    config: Option<PathBuf>,
    /// State directory (config key `data_dir`)
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API service in the foreground
    Serve {
        /// Listen address, HOST:PORT (config key `listen`)
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Put every server on the fake driver (config key `fake_driver`)
        #[arg(long)]
        fake_driver: bool,
    },
    /// Create the first projects, users and roles and write clouds.yaml; safe to run again
    Init {
        /// Address clients will use, HOST:PORT, for the credentials files (config key `listen`)
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Password for the admin user if it has to be created [default: random]
        #[arg(long, env = "ONEBOX_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: Option<String>,
        /// Password for the demo user if it has to be created [default: random]
        #[arg(long, env = "ONEBOX_DEMO_PASSWORD", hide_env_values = true)]
        demo_password: Option<String>,
    },
    /// Database maintenance
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Apply pending schema migrations, after a backup of the database
    Migrate,
    /// Print the schema version
    Version,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let mut cfg = Config::load(cli.config.as_deref())?;
    if let Some(d) = cli.data_dir {
        cfg.data_dir = d;
    }
    match cli.command {
        Command::Serve {
            listen,
            fake_driver,
        } => {
            if let Some(l) = listen {
                cfg.listen = l;
            }
            cfg.fake_driver |= fake_driver;
            serve::init_tracing(&cfg)?;
            runtime()?.block_on(serve::run(cfg))
        }
        Command::Init {
            listen,
            admin_password,
            demo_password,
        } => {
            if let Some(l) = listen {
                cfg.listen = l;
            }
            serve::init_tracing(&cfg)?;
            runtime()?.block_on(async {
                let services = serve::open_services(&cfg)?;
                init::run(
                    &cfg,
                    &services.identity,
                    &services.compute,
                    init::InitOptions {
                        admin_password,
                        demo_password,
                    },
                )
                .await
            })
        }
        Command::Db { command } => db(&cfg, command),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn db(cfg: &Config, command: DbCommand) -> Result<()> {
    let path = cfg.db_path();
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let existed = path.exists();
    let store = store::Store::open_unmigrated(&path)?;
    let version = store.schema_version()?;
    match command {
        DbCommand::Version => {
            println!("{version} (this onebox writes {})", store::LATEST_VERSION);
        }
        DbCommand::Migrate => {
            let pending = store::LATEST_VERSION - version;
            if pending < 0 {
                anyhow::bail!(
                    "database schema {version} is newer than this onebox ({})",
                    store::LATEST_VERSION
                );
            }
            if pending == 0 {
                println!("schema is at version {version}; nothing to do");
                return Ok(());
            }
            if existed && version > 0 {
                let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
                let backup = cfg
                    .data_dir
                    .join(format!("onebox.db.v{version}-{stamp}.bak"));
                store.backup_to(&backup)?;
                println!("backed up the database to {}", backup.display());
            }
            let ran = store.migrate()?;
            println!(
                "applied {ran} migration(s); schema is at version {}",
                store::LATEST_VERSION
            );
        }
    }
    Ok(())
}
