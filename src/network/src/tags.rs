//! Tags on any networking resource, with the resource's own visibility and write rules.

use model::Context;
use store::network as sql;

use crate::{Error, Network, Result, may_write, scope_of};

/// A tagged resource type, by its collection's name in the URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tagged {
    Networks,
    Subnets,
    Ports,
    SecurityGroups,
    Routers,
    FloatingIps,
}

impl Tagged {
    /// The collections whose resources carry tags.
    pub const COLLECTIONS: [&'static str; 6] = [
        "networks",
        "subnets",
        "ports",
        "security-groups",
        "routers",
        "floatingips",
    ];

    pub fn parse(collection: &str) -> Option<Self> {
        Some(match collection {
            "networks" => Tagged::Networks,
            "subnets" => Tagged::Subnets,
            "ports" => Tagged::Ports,
            "security-groups" => Tagged::SecurityGroups,
            "routers" => Tagged::Routers,
            "floatingips" => Tagged::FloatingIps,
            _ => return None,
        })
    }

    fn table(self) -> &'static str {
        match self {
            Tagged::Networks => "net_networks",
            Tagged::Subnets => "net_subnets",
            Tagged::Ports => "net_ports",
            Tagged::SecurityGroups => "net_security_groups",
            Tagged::Routers => "net_routers",
            Tagged::FloatingIps => "net_floating_ips",
        }
    }
}

/// Tags Neutron accepts: 1 to 255 characters, no comma.
fn check(tag: &str) -> Result<()> {
    if tag.is_empty() || tag.chars().count() > 255 || tag.contains(',') {
        return Err(Error::invalid(format!("'{tag}' is not a valid tag.")));
    }
    Ok(())
}

impl Network {
    /// The resource's tags and whether the caller may change them; 404 when it cannot see it.
    async fn tagged(&self, ctx: &Context, kind: Tagged, id: &str) -> Result<(Vec<String>, bool)> {
        let (tags, owner) = match kind {
            Tagged::Networks => {
                let n = self.get_network(ctx, id).await?;
                (n.tags, n.project_id)
            }
            Tagged::Subnets => {
                let n = self.get_subnet(ctx, id).await?;
                (n.tags, n.project_id)
            }
            Tagged::Ports => {
                let n = self.get_port(ctx, id).await?;
                (n.tags, n.project_id)
            }
            Tagged::SecurityGroups | Tagged::Routers | Tagged::FloatingIps => {
                let scope = scope_of(ctx);
                let i = id.to_owned();
                let found = self
                    .store
                    .read(move |c| sql::tagged_owner(c, kind.table(), &scope, &i))
                    .await?;
                let Some((owner, tags)) = found else {
                    return Err(Error::not_found(
                        "NotFound",
                        format!("Resource {id} could not be found."),
                    ));
                };
                (tags, owner)
            }
        };
        Ok((tags, ctx.can_write(&owner)))
    }

    pub async fn tags(&self, ctx: &Context, kind: Tagged, id: &str) -> Result<Vec<String>> {
        Ok(self.tagged(ctx, kind, id).await?.0)
    }

    async fn writable_tags(&self, ctx: &Context, kind: Tagged, id: &str) -> Result<Vec<String>> {
        may_write(ctx, "update_tags")?;
        let (tags, ok) = self.tagged(ctx, kind, id).await?;
        if !ok {
            return Err(Error::Forbidden(
                "rule:update_tags is disallowed by policy".into(),
            ));
        }
        Ok(tags)
    }

    pub async fn set_tags(
        &self,
        ctx: &Context,
        kind: Tagged,
        id: &str,
        tags: Vec<String>,
    ) -> Result<Vec<String>> {
        self.writable_tags(ctx, kind, id).await?;
        for t in &tags {
            check(t)?;
        }
        if tags.len() > 50 {
            return Err(Error::invalid("A resource has at most 50 tags."));
        }
        let i = id.to_owned();
        let t = tags.clone();
        self.store
            .write(move |c| sql::set_tags(c, kind.table(), &i, &t))
            .await?;
        let mut tags = tags;
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    pub async fn add_tag(&self, ctx: &Context, kind: Tagged, id: &str, tag: &str) -> Result<()> {
        let have = self.writable_tags(ctx, kind, id).await?;
        check(tag)?;
        if !have.iter().any(|t| t == tag) && have.len() >= 50 {
            return Err(Error::invalid("A resource has at most 50 tags."));
        }
        let (i, t) = (id.to_owned(), tag.to_owned());
        self.store
            .write(move |c| sql::add_tag(c, kind.table(), &i, &t))
            .await?;
        Ok(())
    }

    pub async fn remove_tag(&self, ctx: &Context, kind: Tagged, id: &str, tag: &str) -> Result<()> {
        self.writable_tags(ctx, kind, id).await?;
        let (i, t) = (id.to_owned(), tag.to_owned());
        let had = self
            .store
            .write(move |c| sql::remove_tag(c, kind.table(), &i, &t))
            .await?;
        if !had {
            return Err(Error::not_found(
                "TagNotFound",
                format!("Tag {tag} could not be found for resource {id}."),
            ));
        }
        Ok(())
    }
}
