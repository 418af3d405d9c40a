//! `onebox`: the OpenStack compute stack in one binary on one host.

mod backup;
mod config;
mod console;
mod edge;
mod firmware;
mod init;
mod listen;
mod lock;
mod nethost;
mod serve;
mod status;
mod teardown;
mod tls;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};

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
    /// Create the first projects, users and roles, write clouds.yaml, and import the firmware
    /// payloads as public images; safe to run again
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
    /// Report whether the API answers, which backends this host can run, and what the
    /// database holds; exits with 3 when the API does not answer
    Status,
    /// Attach this terminal to a server's serial console, through the local API with the
    /// admin's credentials (`<data_dir>/admin-openrc`); Ctrl-] leaves
    Console {
        /// The server, by id or by name (in any project)
        server: String,
        /// An openrc file to sign in with instead of the admin's
        #[arg(long, value_name = "FILE")]
        credentials: Option<PathBuf>,
    },
    /// Write a backup (a tar file, mode 0600) of the database and the credentials files;
    /// safe while onebox runs
    Backup {
        /// The backup file to create; it must not exist yet
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Replace the database and the credentials files with those of a backup; refused while
    /// onebox runs
    Restore {
        /// A file written by `onebox backup`
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Stop what onebox started on this host (guests, dnsmasq, bridges, its nft table);
    /// run by the package when it is removed, refused while onebox serves
    #[command(hide = true)]
    Teardown {
        /// Destroy the guests (their disks go with the state directory) instead of powering
        /// them off
        #[arg(long)]
        purge: bool,
        /// Leave the project bridges and onebox's nft table in place
        #[arg(long)]
        keep_network: bool,
    },
    /// Write shell completions or the man page to stdout (used to build the package)
    #[command(hide = true)]
    Generate {
        #[command(subcommand)]
        what: Generate,
    },
}

#[derive(Subcommand)]
enum Generate {
    /// Completions for SHELL
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The man pages, onebox(1) and one per subcommand, into DIR
    Man {
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Apply pending schema migrations, after a backup of the database
    Migrate {
        /// Back up the database even when no migration is pending (package upgrades do)
        #[arg(long)]
        backup: bool,
    },
    /// Print the schema version
    Version,
}

fn main() -> Result<()> {
    // The container supervisor: `onebox container-shim <instance dir>`, started by the
    // container backend; not a user command, so not in the CLI's help.
    #[cfg(feature = "container")]
    {
        let mut args = std::env::args_os();
        if args.nth(1).is_some_and(|a| a == "container-shim") {
            let Some(dir) = args.next() else {
                anyhow::bail!("usage: onebox container-shim <instance dir>");
            };
            std::process::exit(container::shim::main(std::path::Path::new(&dir)));
        }
    }
    let cli = Cli::parse();
    if let Command::Generate { what } = &cli.command {
        return generate(what);
    }
    let config_file = cli
        .config
        .clone()
        .or_else(|| Some(PathBuf::from(config::DEFAULT_CONFIG)).filter(|p| p.exists()));
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
            serve::ensure_data_dir(&cfg)?;
            // A running onebox initialised the box at its first start; a second writer would
            // race it on the credentials files and the firmware images.
            let _lock = lock::acquire(
                &cfg.data_dir,
                "onebox is serving this data directory (it initialised the box when it first \
                 started); stop it first to run `onebox init`",
            )?;
            runtime()?.block_on(async {
                let services = serve::open_services(&cfg).await?;
                init::run(
                    &cfg,
                    &services.identity,
                    &services.compute,
                    &services.images,
                    init::InitOptions {
                        admin_password,
                        demo_password,
                    },
                )
                .await
            })
        }
        Command::Db { command } => db(&cfg, command),
        Command::Status => {
            if !status::run(&cfg, config_file.as_deref()) {
                std::process::exit(3);
            }
            Ok(())
        }
        Command::Console {
            server,
            credentials,
        } => runtime()?.block_on(console::run(&cfg, &server, credentials)),
        Command::Backup { to } => {
            let s = backup::create(&cfg, &to)?;
            println!("backed up {} to {}", s.files.join(", "), to.display());
            Ok(())
        }
        Command::Restore { from } => {
            let s = backup::restore(&cfg, &from)?;
            println!(
                "restored {} into {}",
                s.files.join(", "),
                cfg.data_dir.display()
            );
            Ok(())
        }
        Command::Teardown {
            purge,
            keep_network,
        } => {
            serve::init_tracing(&cfg)?;
            let r = teardown::run(&cfg, purge, !keep_network)?;
            println!(
                "{} {} guest(s); stopped {} dnsmasq; deleted {} bridge(s)",
                if purge { "destroyed" } else { "powered off" },
                r.guests,
                r.dnsmasq.len(),
                r.bridges.len()
            );
            for f in &r.failures {
                eprintln!("onebox teardown: {f}");
            }
            Ok(())
        }
        Command::Generate { .. } => Ok(()),
    }
}

fn generate(what: &Generate) -> Result<()> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    match what {
        Generate::Completions { shell } => {
            clap_complete::generate(*shell, &mut cmd, "onebox", &mut out);
        }
        Generate::Man { out_dir } => clap_mangen::generate_to(cmd, out_dir)?,
    }
    Ok(())
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
    // Migrating under a running onebox would change the schema beneath its queries.
    let _lock = match command {
        DbCommand::Migrate { .. } => Some(lock::acquire(
            &cfg.data_dir,
            "onebox is serving this data directory; stop it first, then run `onebox db migrate` \
             (nothing was changed)",
        )?),
        DbCommand::Version => None,
    };
    let existed = path.exists();
    let store = store::Store::open_unmigrated(&path)?;
    let version = store.schema_version()?;
    match command {
        DbCommand::Version => {
            println!("{version} (this onebox writes {})", store::LATEST_VERSION);
        }
        DbCommand::Migrate { backup } => {
            let pending = store::LATEST_VERSION - version;
            if pending < 0 {
                anyhow::bail!(
                    "database schema {version} is newer than this onebox ({})",
                    store::LATEST_VERSION
                );
            }
            if existed && version > 0 && (pending > 0 || backup) {
                let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
                let file = cfg
                    .data_dir
                    .join(format!("onebox.db.v{version}-{stamp}.bak"));
                store.backup_to(&file)?;
                // It holds password and token hashes, like the database itself.
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
                println!("backed up the database to {}", file.display());
            }
            if pending == 0 {
                println!("schema is at version {version}; nothing to do");
                return Ok(());
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
