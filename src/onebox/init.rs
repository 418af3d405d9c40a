//! `onebox init`: the first records of a box, the files clients need to reach it, and the
//! firmware payloads imported as public images.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use identity::bootstrap::{Account, AccountOutcome, bootstrap};
use model::Persona;

use crate::config::Config;

pub struct InitOptions {
    pub admin_password: Option<String>,
    pub demo_password: Option<String>,
}

/// Creates what is missing. Never changes an existing account or overwrites credentials
/// files for accounts this run did not create.
pub async fn run(
    cfg: &Config,
    identity: &identity::Identity,
    compute: &compute::Compute,
    images: &image::Images,
    opts: InitOptions,
) -> Result<()> {
    let accounts = [
        Account {
            name: "admin".into(),
            role: Persona::Admin,
            password: opts.admin_password,
        },
        Account {
            name: "demo".into(),
            role: Persona::Member,
            password: opts.demo_password,
        },
    ];
    match crate::tls::ensure_certificate(cfg)? {
        crate::tls::Outcome::Issued { new_ca } => {
            if new_ca {
                println!(
                    "created the box's CA: {} (give it to clients)",
                    crate::tls::box_ca_cert(cfg).display()
                );
            }
            if let Some((cert, _)) = cfg.api.tls_files()? {
                println!("created the HTTPS certificate {}", cert.display());
            }
        }
        crate::tls::Outcome::Present | crate::tls::Outcome::Off => {}
    }
    let outcomes = bootstrap(identity, &accounts).await?;
    let flavors = compute.ensure_default_flavors().await?;
    if flavors > 0 {
        println!("created {flavors} default flavors");
    }
    write_credentials(cfg, &outcomes)?;
    let admin = outcomes
        .iter()
        .find(|o| o.name == "admin")
        .map(|o| o.project_id.clone())
        .context("the admin project")?;
    import_firmware(cfg, images, &admin).await
}

/// Imports the firmware payloads as public images of the admin project (see
/// [`crate::firmware`]); a checksum mismatch fails `onebox init`.
async fn import_firmware(
    cfg: &Config,
    images: &image::Images,
    admin: &model::ProjectId,
) -> Result<()> {
    let dir = cfg.firmware_dir();
    if !dir.join(crate::firmware::SUMS).is_file() {
        println!(
            "no firmware payloads in {} (no {}); no images imported",
            dir.display(),
            crate::firmware::SUMS
        );
        return Ok(());
    }
    let report = crate::firmware::import(&dir, images, admin)
        .await
        .with_context(|| format!("importing the firmware payloads of {}", dir.display()))?;
    for (name, id) in &report.imported {
        println!("imported public image {name} ({id}) from {}", dir.display());
    }
    if !report.present.is_empty() {
        println!(
            "{} firmware image(s) already imported",
            report.present.len()
        );
    }
    for id in &report.hidden {
        println!("hid image {id}: a newer payload of the same name replaced it");
    }
    Ok(())
}

fn write_credentials(cfg: &Config, outcomes: &[AccountOutcome]) -> Result<()> {
    let auth_url = format!("{}/identity", cfg.client_base_url());
    let dir = &cfg.data_dir;
    let mut clouds = String::from(
        "# Written by `onebox init`. Use with: openstack --os-cloud onebox-admin ...\nclouds:\n",
    );
    let cacert = cfg.client_ca();
    let (yaml_ca, openrc_ca) = match &cacert {
        Some(p) => (
            format!(
                "    cacert: '{}'\n",
                p.display().to_string().replace('\'', "''")
            ),
            format!(
                "export OS_CACERT='{}'\n",
                p.display().to_string().replace('\'', "'\\''")
            ),
        ),
        None => (String::new(), String::new()),
    };
    let mut all_known = true;
    for o in outcomes {
        let Some(password) = &o.new_password else {
            all_known = false;
            continue;
        };
        clouds.push_str(&format!(
            "  onebox-{name}:\n    auth:\n      auth_url: {auth_url}\n      username: {name}\n      password: \"{password}\"\n      project_name: {name}\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: {region}\n    interface: public\n    identity_api_version: 3\n{yaml_ca}",
            name = o.name,
            region = cfg.region,
        ));
        let openrc = format!(
            "# Written by `onebox init`. Use with: . {path}\nexport OS_AUTH_URL={auth_url}\nexport OS_USERNAME={name}\nexport OS_PASSWORD='{password}'\nexport OS_PROJECT_NAME={name}\nexport OS_USER_DOMAIN_NAME=Default\nexport OS_PROJECT_DOMAIN_NAME=Default\nexport OS_REGION_NAME={region}\nexport OS_IDENTITY_API_VERSION=3\nexport OS_INTERFACE=public\n{openrc_ca}",
            path = dir.join(format!("{}-openrc", o.name)).display(),
            name = o.name,
            region = cfg.region,
        );
        write_secret(&dir.join(format!("{}-openrc", o.name)), &openrc)?;
        println!(
            "created user {} in project {}; credentials in {}",
            o.name,
            o.project_id,
            dir.join(format!("{}-openrc", o.name)).display()
        );
    }
    if all_known {
        write_secret(&dir.join("clouds.yaml"), &clouds)?;
        println!("clouds.yaml: {}", dir.join("clouds.yaml").display());
    } else {
        println!(
            "accounts already existed; credentials files in {} were left as they are",
            dir.display()
        );
    }
    Ok(())
}

/// Writes a file readable by its owner only (mode 0600), replacing it atomically.
fn write_secret(path: &Path, content: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
