//! Security groups and their rules, with Neutron's checks and faults. A project's `default`
//! group is made the first time the project lists or creates groups (or a port needs it).

use std::net::IpAddr;

use model::network::{
    Direction, PORTED_PROTOCOLS, SecurityGroupRec, SgRuleRec, new_id, protocol_number,
};
use model::{Context, ProjectId};
use store::network::{self as sql, Scope};

use crate::{
    Error, Network, Result, abort, may_write, now_stamp, owner_for, quota, scope_of, unwrap_abort,
};

#[derive(Clone, Debug, Default)]
pub struct SecurityGroupCreate {
    pub name: String,
    pub description: String,
    pub stateful: bool,
    pub project_id: Option<String>,
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct SecurityGroupUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub stateful: Option<bool>,
}

/// A rule as asked; ports are the text given (a number or not), checked here.
#[derive(Clone, Debug, Default)]
pub struct RuleCreate {
    pub security_group_id: String,
    pub direction: String,
    pub ethertype: Option<String>,
    pub protocol: Option<String>,
    pub port_range_min: Option<String>,
    pub port_range_max: Option<String>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
    pub description: String,
}

pub(crate) fn not_found(id: &str) -> Error {
    Error::not_found(
        "SecurityGroupNotFound",
        format!("Security group {id} does not exist"),
    )
}

fn rule_not_found(id: &str) -> Error {
    Error::not_found(
        "SecurityGroupRuleNotFound",
        format!("Security group rule {id} does not exist"),
    )
}

/// A prefix (`a.b.c.d/len`, an IPv6 one, or a bare address) as its IP version and
/// canonical text (host bits zero).
pub fn normalize_prefix(s: &str) -> Option<(u8, String)> {
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    match a.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => {
            let l: u32 = l.map_or(Some(32), |l| l.parse().ok())?;
            if l > 32 {
                return None;
            }
            let m = u32::MAX.checked_shl(32 - l).unwrap_or(0);
            let n = std::net::Ipv4Addr::from(u32::from(a) & m);
            Some((4, format!("{n}/{l}")))
        }
        IpAddr::V6(a) => {
            let l: u32 = l.map_or(Some(128), |l| l.parse().ok())?;
            if l > 128 {
                return None;
            }
            let m = u128::MAX.checked_shl(128 - l).unwrap_or(0);
            let n = std::net::Ipv6Addr::from(u128::from(a) & m);
            Some((6, format!("{n}/{l}")))
        }
    }
}

fn is_icmp(n: u8) -> bool {
    n == 1 || n == 58
}

fn protocols_message(p: &str) -> String {
    let names: Vec<String> = model::network::PROTOCOLS
        .iter()
        .map(|(n, _)| format!("'{n}'"))
        .collect();
    format!(
        "Security group rule protocol {p} not supported. Only protocol values (None, 'any', {}) and integer representations [0 to 255] are supported.",
        names.join(", ")
    )
}

fn port_value(v: &Option<String>) -> Result<Option<i64>> {
    match v {
        None => Ok(None),
        Some(s) => s.trim().parse::<i64>().map(Some).map_err(|_| {
            Error::bad(
                "SecurityGroupInvalidPortValue",
                format!("Invalid value for port {s}"),
            )
        }),
    }
}

/// A rule's fields checked as Neutron checks them: `(direction, ethertype, protocol,
/// port_min, port_max, remote_ip_prefix)`.
#[allow(clippy::type_complexity)]
fn check_rule(
    r: &RuleCreate,
) -> Result<(
    Direction,
    String,
    Option<String>,
    Option<u32>,
    Option<u32>,
    Option<String>,
)> {
    let direction = Direction::parse(&r.direction).ok_or_else(|| {
        Error::bad(
            "HTTPBadRequest",
            format!(
                "Invalid input for direction. Reason: {} is not in valid_values.",
                r.direction
            ),
        )
    })?;
    let ethertype = r.ethertype.clone().unwrap_or_else(|| "IPv4".into());
    if ethertype != "IPv4" && ethertype != "IPv6" {
        return Err(Error::bad(
            "SecurityGroupRuleInvalidEtherType",
            format!(
                "Security group rule for ethertype '{ethertype}' not supported. Allowed values are ['IPv4', 'IPv6']."
            ),
        ));
    }
    let mut protocol = match r.protocol.as_deref() {
        None | Some("any") => None,
        Some(p) => {
            if protocol_number(p).is_none() || p.starts_with('+') {
                return Err(Error::bad(
                    "SecurityGroupRuleInvalidProtocol",
                    protocols_message(p),
                ));
            }
            Some(p.to_owned())
        }
    };
    let number = protocol.as_deref().and_then(protocol_number);
    if let Some(p) = protocol.as_deref() {
        let lower = p.to_ascii_lowercase();
        if ethertype == "IPv4" && (lower == "icmpv6" || lower == "ipv6-icmp") {
            return Err(Error::bad(
                "SecurityGroupEthertypeConflictWithProtocol",
                format!("Invalid ethertype {ethertype} for protocol {p}."),
            ));
        }
        if ethertype == "IPv6" && (lower == "icmp" || lower == "icmpv6") {
            protocol = Some("ipv6-icmp".into());
        }
    }
    let min = port_value(&r.port_range_min)?;
    let max = port_value(&r.port_range_max)?;
    let (min, max) = match number {
        _ if min.is_none() && max.is_none() => (None, None),
        None => {
            return Err(Error::bad(
                "SecurityGroupProtocolRequiredWithPorts",
                "Must also specify protocol if port range is given.",
            ));
        }
        Some(n) if PORTED_PROTOCOLS.contains(&n) => {
            for v in [min, max].into_iter().flatten() {
                if !(1..=65535).contains(&v) {
                    return Err(Error::bad(
                        "SecurityGroupInvalidPortValue",
                        format!("Invalid value for port {v}"),
                    ));
                }
            }
            match (min, max) {
                (Some(a), Some(b)) if a <= b => (Some(a as u32), Some(b as u32)),
                _ => {
                    return Err(Error::bad(
                        "SecurityGroupInvalidPortRange",
                        "For TCP/UDP protocols, port_range_min must be <= port_range_max",
                    ));
                }
            }
        }
        Some(n) if is_icmp(n) => {
            for (v, what, attr) in [
                (min, "type", "port_range_min"),
                (max, "code", "port_range_max"),
            ] {
                if let Some(v) = v
                    && !(0..=255).contains(&v)
                {
                    return Err(Error::bad(
                        "SecurityGroupInvalidIcmpValue",
                        format!("Invalid value for ICMP {what} ({attr}) {v}. It must be 0 to 255."),
                    ));
                }
            }
            if let (None, Some(b)) = (min, max) {
                return Err(Error::bad(
                    "SecurityGroupMissingIcmpType",
                    format!(
                        "ICMP code (port-range-max) {b} is provided but ICMP type (port-range-min) is missing."
                    ),
                ));
            }
            (min.map(|v| v as u32), max.map(|v| v as u32))
        }
        Some(n) => {
            return Err(Error::bad(
                "SecurityGroupInvalidProtocolForPort",
                format!(
                    "Ports cannot be specified for protocol {n}. Ports are only supported for DCCP, SCTP, TCP, UDP, UDPLITE."
                ),
            ));
        }
    };
    if r.remote_ip_prefix.is_some() && r.remote_group_id.is_some() {
        return Err(Error::bad(
            "SecurityGroupMultipleRemoteEntites",
            "Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.",
        ));
    }
    if let Some(p) = &r.remote_ip_prefix {
        let (v, _) = normalize_prefix(p).ok_or_else(|| {
            Error::bad(
                "InvalidCIDR",
                format!("Invalid CIDR {p} given as IP prefix."),
            )
        })?;
        if (v == 4) != (ethertype == "IPv4") {
            return Err(Error::bad(
                "SecurityGroupRuleParameterConflict",
                format!("Conflicting value ethertype {ethertype} for CIDR {p}"),
            ));
        }
    }
    Ok((
        direction,
        ethertype,
        protocol,
        min,
        max,
        r.remote_ip_prefix.clone(),
    ))
}

/// Whether two rules say the same (protocols by number, prefixes by their network).
fn same_rule(a: &SgRuleRec, b: &SgRuleRec) -> bool {
    let proto = |p: &Option<String>| p.as_deref().and_then(protocol_number);
    let prefix = |p: &Option<String>| {
        p.as_deref()
            .and_then(normalize_prefix)
            .map(|(_, s)| s)
            .filter(|s| s != "0.0.0.0/0" && s != "::/0")
    };
    a.security_group_id == b.security_group_id
        && a.direction == b.direction
        && a.ethertype == b.ethertype
        && proto(&a.protocol) == proto(&b.protocol)
        && a.port_range_min == b.port_range_min
        && a.port_range_max == b.port_range_max
        && prefix(&a.remote_ip_prefix) == prefix(&b.remote_ip_prefix)
        && a.remote_group_id == b.remote_group_id
}

impl Network {
    /// The project's `default` group, made now when it does not exist yet.
    async fn ensure_default(&self, project: &ProjectId) -> Result<()> {
        let p = project.clone();
        let exists = self
            .store
            .read(move |c| sql::security_group_by_name(c, &p, "default"))
            .await?
            .is_some();
        if !exists {
            let p = project.clone();
            self.store
                .write(move |c| sql::ensure_default_group(c, &p))
                .await?;
        }
        Ok(())
    }

    pub async fn list_security_groups(&self, ctx: &Context) -> Result<Vec<SecurityGroupRec>> {
        if let Some(p) = &ctx.project_id {
            self.ensure_default(p).await?;
        }
        let scope = scope_of(ctx);
        Ok(self
            .store
            .read(move |c| sql::list_security_groups(c, &scope))
            .await?)
    }

    pub async fn get_security_group(&self, ctx: &Context, id: &str) -> Result<SecurityGroupRec> {
        let scope = scope_of(ctx);
        let i = id.to_owned();
        self.store
            .read(move |c| sql::get_security_group(c, &scope, &i))
            .await?
            .ok_or_else(|| not_found(id))
    }

    pub async fn create_security_group(
        &self,
        ctx: &Context,
        req: SecurityGroupCreate,
    ) -> Result<SecurityGroupRec> {
        may_write(ctx, "create_security_group")?;
        let project = owner_for(ctx, req.project_id.as_deref())?;
        let id = new_id();
        let mut g = SecurityGroupRec {
            id: id.clone(),
            project_id: project.clone(),
            name: req.name,
            description: req.description,
            stateful: req.stateful,
            rules: Vec::new(),
            tags: Vec::new(),
            stamp: now_stamp(),
        };
        for eth in ["IPv4", "IPv6"] {
            g.rules
                .push(sql::plain_rule(&project, &id, Direction::Egress, eth, None));
        }
        let tags = req.tags;
        unwrap_abort(
            self.store
                .write(move |c| {
                    sql::ensure_default_group(c, &project)?;
                    if g.name == "default" {
                        return Err(abort(default_exists()));
                    }
                    quota(c, &project, "security_group")?;
                    if sql::net_over_quota(c, &project, "security_group_rule", 2)?.is_some() {
                        return Err(abort(Error::OverQuota("security_group_rule".into())));
                    }
                    sql::insert_security_group(c, &g)?;
                    if !tags.is_empty() {
                        sql::set_tags(c, "net_security_groups", &g.id, &tags)?;
                    }
                    Ok(())
                })
                .await,
        )?;
        tracing::info!(security_group_id = %id, "security group created");
        self.get_security_group(ctx, &id).await
    }

    /// A group the caller may change (its project's, or any for an admin).
    async fn writable_group(
        &self,
        ctx: &Context,
        id: &str,
        what: &str,
    ) -> Result<SecurityGroupRec> {
        may_write(ctx, what)?;
        let g = self.get_security_group(ctx, id).await?;
        if !ctx.can_write(&g.project_id) {
            return Err(Error::Forbidden(format!(
                "rule:{what} is disallowed by policy"
            )));
        }
        Ok(g)
    }

    pub async fn update_security_group(
        &self,
        ctx: &Context,
        id: &str,
        u: SecurityGroupUpdate,
    ) -> Result<SecurityGroupRec> {
        let mut g = self
            .writable_group(ctx, id, "update_security_group")
            .await?;
        if let Some(n) = u.name {
            if g.name == "default" && n != "default" {
                return Err(Error::conflict(
                    "SecurityGroupCannotUpdateDefault",
                    "Updating default security group not allowed.",
                ));
            }
            if g.name != "default" && n == "default" {
                return Err(default_exists());
            }
            g.name = n;
        }
        if let Some(d) = u.description {
            g.description = d;
        }
        if let Some(s) = u.stateful {
            g.stateful = s;
        }
        self.store
            .write(move |c| sql::update_security_group(c, &g))
            .await?;
        self.resync().await?;
        self.get_security_group(ctx, id).await
    }

    pub async fn delete_security_group(&self, ctx: &Context, id: &str) -> Result<()> {
        let g = self
            .writable_group(ctx, id, "delete_security_group")
            .await?;
        if g.name == "default" && !ctx.is_admin() {
            return Err(Error::conflict(
                "SecurityGroupCannotRemoveDefault",
                "Insufficient rights for removing default security group.",
            ));
        }
        let i = id.to_owned();
        unwrap_abort(
            self.store
                .write(move |c| {
                    if !sql::group_port_ids(c, &i)?.is_empty() {
                        return Err(abort(Error::conflict(
                            "SecurityGroupInUse",
                            format!("Security Group {i} in use."),
                        )));
                    }
                    sql::delete_security_group(c, &i)
                })
                .await,
        )?;
        tracing::info!(security_group_id = %id, "security group deleted");
        self.resync().await?;
        Ok(())
    }

    /// The rules the caller sees, each with whether its group is a `default` one.
    pub async fn list_rules(&self, ctx: &Context) -> Result<Vec<(SgRuleRec, bool)>> {
        let scope = scope_of(ctx);
        Ok(self
            .store
            .read(move |c| {
                let defaults: std::collections::HashSet<String> =
                    sql::list_security_groups(c, &scope)?
                        .into_iter()
                        .filter(|g| g.name == "default")
                        .map(|g| g.id)
                        .collect();
                Ok(sql::list_rules(c, &scope)?
                    .into_iter()
                    .map(|r| {
                        let d = defaults.contains(&r.security_group_id);
                        (r, d)
                    })
                    .collect())
            })
            .await?)
    }

    pub async fn get_rule(&self, ctx: &Context, id: &str) -> Result<(SgRuleRec, bool)> {
        let scope = scope_of(ctx);
        let i = id.to_owned();
        self.store
            .read(move |c| {
                let Some(r) = sql::get_rule(c, &scope, &i)? else {
                    return Ok(None);
                };
                let d = sql::get_security_group(c, &Scope::All, &r.security_group_id)?
                    .is_some_and(|g| g.name == "default");
                Ok(Some((r, d)))
            })
            .await?
            .ok_or_else(|| rule_not_found(id))
    }

    pub async fn create_rule(&self, ctx: &Context, req: RuleCreate) -> Result<(SgRuleRec, bool)> {
        may_write(ctx, "create_security_group_rule")?;
        let (direction, ethertype, protocol, min, max, prefix) = check_rule(&req)?;
        let g = self
            .writable_group(ctx, &req.security_group_id, "create_security_group_rule")
            .await?;
        let scope = scope_of(ctx);
        let mut r = sql::plain_rule(
            &g.project_id,
            &g.id,
            direction,
            &ethertype,
            req.remote_group_id.as_deref(),
        );
        r.protocol = protocol;
        r.port_range_min = min;
        r.port_range_max = max;
        r.remote_ip_prefix = prefix;
        r.description = req.description;
        let id = r.id.clone();
        let project = g.project_id.clone();
        unwrap_abort(
            self.store
                .write(move |c| {
                    if let Some(rg) = &r.remote_group_id
                        && sql::get_security_group(c, &scope, rg)?.is_none()
                    {
                        return Err(abort(not_found(rg)));
                    }
                    let Some(g) = sql::get_security_group(c, &Scope::All, &r.security_group_id)?
                    else {
                        return Err(abort(not_found(&r.security_group_id)));
                    };
                    if let Some(d) = g.rules.iter().find(|o| same_rule(o, &r)) {
                        return Err(abort(Error::conflict(
                            "SecurityGroupRuleExists",
                            format!("Security group rule already exists. Rule id is {}.", d.id),
                        )));
                    }
                    quota(c, &project, "security_group_rule")?;
                    sql::insert_rule(c, &r)
                })
                .await,
        )?;
        tracing::info!(rule_id = %id, "security group rule created");
        self.resync().await?;
        self.get_rule(ctx, &id).await
    }

    pub async fn delete_rule(&self, ctx: &Context, id: &str) -> Result<()> {
        may_write(ctx, "delete_security_group_rule")?;
        let (r, _) = self.get_rule(ctx, id).await?;
        if !ctx.can_write(&r.project_id) {
            return Err(Error::Forbidden(
                "rule:delete_security_group_rule is disallowed by policy".into(),
            ));
        }
        let i = id.to_owned();
        let gone = self.store.write(move |c| sql::delete_rule(c, &i)).await?;
        if !gone {
            return Err(rule_not_found(id));
        }
        tracing::info!(rule_id = %id, "security group rule deleted");
        self.resync().await?;
        Ok(())
    }
}

fn default_exists() -> Error {
    Error::conflict(
        "SecurityGroupDefaultAlreadyExists",
        "Default security group already exists.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(f: impl FnOnce(&mut RuleCreate)) -> Result<String> {
        let mut r = RuleCreate {
            security_group_id: "g".into(),
            direction: "ingress".into(),
            ..Default::default()
        };
        f(&mut r);
        check_rule(&r).map(|(_, e, p, a, b, _)| format!("{e} {p:?} {a:?} {b:?}"))
    }

    fn kind(r: Result<String>) -> &'static str {
        match r {
            Err(Error::BadRequest { kind, .. }) => kind,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rules_are_checked_as_neutron_checks_them() {
        assert_eq!(rule(|_| {}).expect("valid"), "IPv4 None None None");
        assert_eq!(
            rule(|r| r.protocol = Some("any".into())).expect("valid"),
            "IPv4 None None None"
        );
        assert_eq!(
            rule(|r| {
                r.ethertype = Some("IPv6".into());
                r.protocol = Some("icmp".into());
            })
            .expect("valid"),
            "IPv6 Some(\"ipv6-icmp\") None None"
        );
        let tcp = |a: Option<&str>, b: Option<&str>| {
            rule(|r| {
                r.protocol = Some("tcp".into());
                r.port_range_min = a.map(str::to_owned);
                r.port_range_max = b.map(str::to_owned);
            })
        };
        assert_eq!(
            tcp(Some("22"), Some("22")).expect("valid"),
            "IPv4 Some(\"tcp\") Some(22) Some(22)"
        );
        assert_eq!(
            kind(tcp(Some("80"), Some("22"))),
            "SecurityGroupInvalidPortRange"
        );
        assert_eq!(kind(tcp(Some("10"), None)), "SecurityGroupInvalidPortRange");
        assert_eq!(
            kind(tcp(Some("0"), Some("10"))),
            "SecurityGroupInvalidPortValue"
        );
        assert_eq!(kind(tcp(Some("a"), None)), "SecurityGroupInvalidPortValue");
        assert_eq!(
            kind(rule(|r| r.direction = "sideways".into())),
            "HTTPBadRequest"
        );
        assert_eq!(
            kind(rule(|r| r.ethertype = Some("IPv5".into()))),
            "SecurityGroupRuleInvalidEtherType"
        );
        for p in ["foo", "256", "-1"] {
            assert_eq!(
                kind(rule(|r| r.protocol = Some(p.into()))),
                "SecurityGroupRuleInvalidProtocol"
            );
        }
        assert_eq!(
            kind(rule(|r| {
                r.protocol = Some("gre".into());
                r.port_range_min = Some("1".into());
            })),
            "SecurityGroupInvalidProtocolForPort"
        );
        assert_eq!(
            kind(rule(|r| {
                r.protocol = Some("icmp".into());
                r.port_range_min = Some("256".into());
            })),
            "SecurityGroupInvalidIcmpValue"
        );
        assert_eq!(
            kind(rule(|r| {
                r.protocol = Some("icmp".into());
                r.port_range_max = Some("3".into());
            })),
            "SecurityGroupMissingIcmpType"
        );
        assert_eq!(
            kind(rule(|r| r.port_range_min = Some("3".into()))),
            "SecurityGroupProtocolRequiredWithPorts"
        );
        assert_eq!(
            kind(rule(|r| r.protocol = Some("icmpv6".into()))),
            "SecurityGroupEthertypeConflictWithProtocol"
        );
        assert_eq!(
            kind(rule(|r| {
                r.ethertype = Some("IPv6".into());
                r.remote_ip_prefix = Some("10.0.0.0/8".into());
            })),
            "SecurityGroupRuleParameterConflict"
        );
        assert_eq!(
            kind(rule(|r| r.remote_ip_prefix = Some("bogus".into()))),
            "InvalidCIDR"
        );
        assert_eq!(
            kind(rule(|r| {
                r.remote_ip_prefix = Some("10.0.0.0/8".into());
                r.remote_group_id = Some("g".into());
            })),
            "SecurityGroupMultipleRemoteEntites"
        );
    }

    #[test]
    fn prefixes_are_normalized() {
        assert_eq!(
            normalize_prefix("10.0.0.1/8"),
            Some((4, "10.0.0.0/8".into()))
        );
        assert_eq!(
            normalize_prefix("10.0.0.1"),
            Some((4, "10.0.0.1/32".into()))
        );
        assert_eq!(
            normalize_prefix("2001:db8::1/32"),
            Some((6, "2001:db8::/32".into()))
        );
        assert_eq!(normalize_prefix("10.0.0.0/33"), None);
    }
}
