//! Append-only schema migrations. Never edit a migration that has shipped: add a new one.
//! The schema version lives in SQLite's `user_version`.

use rusqlite::Connection;

use crate::{Error, Result};

const MIGRATIONS: &[&str] = &[
    // 1: identity.
    "CREATE TABLE domains (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        enabled INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL
    );
    CREATE TABLE projects (
        id TEXT PRIMARY KEY,
        domain_id TEXT NOT NULL REFERENCES domains(id),
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        enabled INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        UNIQUE (domain_id, name)
    );
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        domain_id TEXT NOT NULL REFERENCES domains(id),
        name TEXT NOT NULL,
        password_hash TEXT,
        email TEXT,
        description TEXT,
        enabled INTEGER NOT NULL DEFAULT 1,
        default_project_id TEXT,
        password_expires_at TEXT,
        created_at TEXT NOT NULL,
        UNIQUE (domain_id, name)
    );
    CREATE TABLE roles (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT,
        created_at TEXT NOT NULL
    );
    CREATE TABLE implied_roles (
        prior_role_id TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
        implied_role_id TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
        PRIMARY KEY (prior_role_id, implied_role_id)
    );
    CREATE TABLE role_assignments (
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        target_type TEXT NOT NULL CHECK (target_type IN ('project', 'domain')),
        target_id TEXT NOT NULL,
        role_id TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
        PRIMARY KEY (user_id, target_type, target_id, role_id)
    );
    CREATE INDEX role_assignments_target ON role_assignments (target_type, target_id);
    CREATE TABLE tokens (
        hash BLOB PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        project_id TEXT REFERENCES projects(id) ON DELETE CASCADE,
        methods TEXT NOT NULL,
        issued_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        audit_ids TEXT NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX tokens_expires_at ON tokens (expires_at);
    CREATE INDEX tokens_user ON tokens (user_id);",
    // 2: compute: flavors, keypairs, quotas, servers, networks, instance actions.
    "CREATE TABLE flavors (
        flavorid TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        vcpus INTEGER NOT NULL,
        ram_mb INTEGER NOT NULL,
        disk_gb INTEGER NOT NULL,
        ephemeral_gb INTEGER NOT NULL DEFAULT 0,
        swap_mb INTEGER NOT NULL DEFAULT 0,
        rxtx_factor REAL NOT NULL DEFAULT 1.0,
        is_public INTEGER NOT NULL DEFAULT 1,
        disabled INTEGER NOT NULL DEFAULT 0,
        description TEXT,
        created_at TEXT NOT NULL
    );
    CREATE TABLE flavor_extra_specs (
        flavorid TEXT NOT NULL REFERENCES flavors(flavorid) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (flavorid, key)
    );
    CREATE TABLE flavor_projects (
        flavorid TEXT NOT NULL REFERENCES flavors(flavorid) ON DELETE CASCADE,
        project_id TEXT NOT NULL,
        PRIMARY KEY (flavorid, project_id)
    );
    CREATE TABLE keypairs (
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        public_key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (user_id, name)
    );
    CREATE TABLE quotas (
        project_id TEXT NOT NULL,
        resource TEXT NOT NULL,
        hard_limit INTEGER NOT NULL,
        PRIMARY KEY (project_id, resource)
    );
    CREATE TABLE networks (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        project_id TEXT,
        cidr TEXT NOT NULL UNIQUE,
        gateway TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE servers (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        project_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        flavor TEXT NOT NULL,
        flavorid TEXT NOT NULL,
        vcpus INTEGER NOT NULL,
        ram_mb INTEGER NOT NULL,
        image_id TEXT,
        vm_state TEXT NOT NULL,
        task_state TEXT,
        power_state INTEGER NOT NULL DEFAULT 0,
        backend TEXT NOT NULL,
        availability_zone TEXT NOT NULL,
        key_name TEXT,
        key_data TEXT,
        user_data TEXT,
        config_drive INTEGER NOT NULL DEFAULT 0,
        description TEXT,
        hostname TEXT NOT NULL,
        access_ipv4 TEXT,
        access_ipv6 TEXT,
        locked_by TEXT,
        locked_reason TEXT,
        reservation_id TEXT NOT NULL,
        launch_index INTEGER NOT NULL DEFAULT 0,
        progress INTEGER NOT NULL DEFAULT 0,
        host TEXT NOT NULL,
        scheduler_hints TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        launched_at TEXT,
        terminated_at TEXT,
        deleted INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX servers_project ON servers (project_id, deleted, created_at);
    CREATE INDEX servers_updated ON servers (updated_at);
    CREATE TABLE server_metadata (
        server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (server_id, key)
    );
    CREATE TABLE server_tags (
        server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        PRIMARY KEY (server_id, tag)
    );
    CREATE TABLE server_faults (
        server_id TEXT PRIMARY KEY REFERENCES servers(id) ON DELETE CASCADE,
        code INTEGER NOT NULL,
        message TEXT NOT NULL,
        details TEXT,
        created_at TEXT NOT NULL
    );
    CREATE TABLE ports (
        server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
        network_id TEXT NOT NULL REFERENCES networks(id),
        address TEXT NOT NULL,
        mac TEXT NOT NULL UNIQUE,
        position INTEGER NOT NULL,
        UNIQUE (network_id, address)
    );
    CREATE TABLE instance_actions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        server_id TEXT NOT NULL,
        request_id TEXT NOT NULL,
        action TEXT NOT NULL,
        project_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        start_time TEXT NOT NULL,
        finish_time TEXT,
        message TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX instance_actions_server ON instance_actions (server_id, start_time);
    CREATE TABLE instance_action_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        action_id INTEGER NOT NULL REFERENCES instance_actions(id) ON DELETE CASCADE,
        event TEXT NOT NULL,
        start_time TEXT NOT NULL,
        finish_time TEXT,
        result TEXT,
        details TEXT,
        host TEXT NOT NULL
    );",
    // 3: images. `owner` is deliberately not a foreign key: as in Glance, an image outlives
    // the project that owns it, and only an admin can then clean it up.
    "CREATE TABLE images (
        id TEXT PRIMARY KEY,
        name TEXT,
        owner TEXT NOT NULL,
        status TEXT NOT NULL,
        visibility TEXT NOT NULL,
        protected INTEGER NOT NULL DEFAULT 0,
        os_hidden INTEGER NOT NULL DEFAULT 0,
        disk_format TEXT,
        container_format TEXT,
        min_disk INTEGER NOT NULL DEFAULT 0,
        min_ram INTEGER NOT NULL DEFAULT 0,
        size INTEGER,
        virtual_size INTEGER,
        checksum TEXT,
        os_hash_algo TEXT,
        os_hash_value TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX images_owner ON images (owner);
    CREATE TABLE image_properties (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (image_id, name)
    );
    CREATE TABLE image_tags (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        PRIMARY KEY (image_id, tag)
    );
    CREATE TABLE image_members (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        member TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (image_id, member)
    );
    CREATE INDEX image_members_member ON image_members (member);",
    // Server system metadata, as Nova keeps it: what an action in progress must remember
    // (the flavor before a resize, the image a shelved server was saved to, when a server
    // was soft-deleted).
    "CREATE TABLE server_system_metadata (
        server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (server_id, key)
    );
    CREATE INDEX server_system_metadata_key ON server_system_metadata (key);",
    // Server groups and the services of the box. Group members are not foreign keys to
    // servers: a deleted server's row stays, and readers skip members whose server is gone.
    "CREATE TABLE server_groups (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        project_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        policy TEXT NOT NULL,
        max_server_per_host INTEGER,
        created_at TEXT NOT NULL
    );
    CREATE INDEX server_groups_project ON server_groups (project_id, created_at);
    CREATE TABLE server_group_members (
        group_id TEXT NOT NULL REFERENCES server_groups(id) ON DELETE CASCADE,
        server_id TEXT NOT NULL,
        added_at TEXT NOT NULL,
        PRIMARY KEY (group_id, server_id)
    );
    CREATE INDEX server_group_members_server ON server_group_members (server_id);
    CREATE TABLE compute_services (
        binary TEXT PRIMARY KEY,
        seq INTEGER NOT NULL UNIQUE,
        id TEXT NOT NULL UNIQUE,
        node_id TEXT NOT NULL UNIQUE,
        disabled INTEGER NOT NULL DEFAULT 0,
        disabled_reason TEXT,
        forced_down INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );",
    // 4: bare-metal nodes (the Ironic-compatible API). JSON objects are stored as text;
    // the BMC password sits in its own column and never leaves the store through listings.
    "CREATE TABLE baremetal_nodes (
        uuid TEXT PRIMARY KEY,
        name TEXT UNIQUE,
        driver TEXT NOT NULL,
        driver_info TEXT NOT NULL,
        bmc_password TEXT,
        resource_class TEXT,
        properties TEXT NOT NULL,
        extra TEXT NOT NULL,
        instance_info TEXT NOT NULL,
        power_state TEXT,
        target_power_state TEXT,
        provision_state TEXT NOT NULL,
        target_provision_state TEXT,
        maintenance INTEGER NOT NULL DEFAULT 0,
        maintenance_reason TEXT,
        last_error TEXT,
        instance_uuid TEXT UNIQUE,
        boot_device TEXT,
        boot_persistent INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT,
        provision_updated_at TEXT
    );
    CREATE INDEX baremetal_nodes_class ON baremetal_nodes (resource_class, provision_state);",
    // Identity: the token a token was made from (`token` auth method), so revoking a token
    // revokes its whole chain.
    "ALTER TABLE tokens ADD COLUMN parent_hash BLOB;
    CREATE INDEX tokens_parent ON tokens (parent_hash);",
    // The host uid/gid range of each container's user namespace (65536 ids from `base`).
    // Not tied to the servers table: a range is freed when the container's files and
    // processes are gone, which can be after the server's row is.
    "CREATE TABLE container_id_ranges (
        server_id TEXT PRIMARY KEY,
        base INTEGER NOT NULL UNIQUE
    );",
    // deleted image ids stay reserved, as Glance keeps them: a deleted image's id is
    // recorded when its row goes, and an insert of a recorded id fails as a constraint
    // violation (the image service answers 409). Caches of image content are keyed by content
    // hash, but an id that could come back with other content would still mislead every
    // client and server record that names it.
    "CREATE TABLE deleted_images (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        deleted_at TEXT NOT NULL
    );
    CREATE TRIGGER images_reserve_deleted_id AFTER DELETE ON images
    BEGIN
        INSERT OR IGNORE INTO deleted_images (id, owner, deleted_at)
        VALUES (OLD.id, OLD.owner, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
    END;
    CREATE TRIGGER images_refuse_deleted_id BEFORE INSERT ON images
    WHEN EXISTS (SELECT 1 FROM deleted_images WHERE id = NEW.id)
    BEGIN
        SELECT RAISE(ABORT, 'image id was used by a deleted image');
    END;",
    // The networking service (Neutron's resources). The networks and ports of earlier
    // versions move into these tables: each network becomes a network with one subnet (its
    // CIDR, gateway and the addresses servers were given from .10 up), each port a port
    // owned by its server (`compute:nova`, made by compute so deleted with the server), in
    // the project's `default` security group, made here for every project with a network.
    "CREATE TABLE net_networks (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        admin_state_up INTEGER NOT NULL DEFAULT 1,
        shared INTEGER NOT NULL DEFAULT 0,
        external INTEGER NOT NULL DEFAULT 0,
        mtu INTEGER NOT NULL DEFAULT 1500,
        port_security INTEGER NOT NULL DEFAULT 1,
        is_default INTEGER NOT NULL DEFAULT 0,
        revision INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX net_networks_project ON net_networks (project_id);
    CREATE TABLE net_subnets (
        id TEXT PRIMARY KEY,
        network_id TEXT NOT NULL REFERENCES net_networks(id),
        project_id TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        ip_version INTEGER NOT NULL DEFAULT 4,
        cidr TEXT NOT NULL,
        gateway_ip TEXT,
        enable_dhcp INTEGER NOT NULL DEFAULT 1,
        allocation_pools TEXT NOT NULL DEFAULT '[]',
        dns_nameservers TEXT NOT NULL DEFAULT '[]',
        host_routes TEXT NOT NULL DEFAULT '[]',
        ipv6_ra_mode TEXT,
        ipv6_address_mode TEXT,
        revision INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX net_subnets_network ON net_subnets (network_id);
    CREATE TABLE net_ports (
        id TEXT PRIMARY KEY,
        network_id TEXT NOT NULL REFERENCES net_networks(id),
        project_id TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        mac_address TEXT NOT NULL UNIQUE,
        admin_state_up INTEGER NOT NULL DEFAULT 1,
        status TEXT NOT NULL DEFAULT 'DOWN',
        device_id TEXT NOT NULL DEFAULT '',
        device_owner TEXT NOT NULL DEFAULT '',
        port_security INTEGER NOT NULL DEFAULT 1,
        allowed_address_pairs TEXT NOT NULL DEFAULT '[]',
        position INTEGER NOT NULL DEFAULT 0,
        compute_owned INTEGER NOT NULL DEFAULT 0,
        revision INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX net_ports_device ON net_ports (device_id);
    CREATE INDEX net_ports_network ON net_ports (network_id);
    CREATE INDEX net_ports_project ON net_ports (project_id);
    CREATE TABLE net_ips (
        port_id TEXT NOT NULL REFERENCES net_ports(id) ON DELETE CASCADE,
        subnet_id TEXT NOT NULL REFERENCES net_subnets(id),
        network_id TEXT NOT NULL,
        ip_address TEXT NOT NULL,
        PRIMARY KEY (network_id, ip_address)
    );
    CREATE INDEX net_ips_port ON net_ips (port_id);
    CREATE INDEX net_ips_address ON net_ips (ip_address);
    CREATE TABLE net_security_groups (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        stateful INTEGER NOT NULL DEFAULT 1,
        revision INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX net_security_groups_default ON net_security_groups (project_id)
        WHERE name = 'default';
    CREATE TABLE net_sg_rules (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        project_id TEXT NOT NULL,
        security_group_id TEXT NOT NULL REFERENCES net_security_groups(id) ON DELETE CASCADE,
        direction TEXT NOT NULL,
        ethertype TEXT NOT NULL,
        protocol TEXT,
        port_range_min INTEGER,
        port_range_max INTEGER,
        remote_ip_prefix TEXT,
        remote_group_id TEXT REFERENCES net_security_groups(id),
        description TEXT NOT NULL DEFAULT '',
        revision INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX net_sg_rules_group ON net_sg_rules (security_group_id);
    CREATE TABLE net_port_security_groups (
        port_id TEXT NOT NULL REFERENCES net_ports(id) ON DELETE CASCADE,
        security_group_id TEXT NOT NULL REFERENCES net_security_groups(id),
        PRIMARY KEY (port_id, security_group_id)
    );
    CREATE INDEX net_port_security_groups_group ON net_port_security_groups (security_group_id);
    CREATE TABLE net_routers (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        admin_state_up INTEGER NOT NULL DEFAULT 1,
        external_network_id TEXT REFERENCES net_networks(id),
        enable_snat INTEGER NOT NULL DEFAULT 1,
        revision INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE net_floating_ips (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        floating_network_id TEXT NOT NULL REFERENCES net_networks(id),
        floating_port_id TEXT NOT NULL REFERENCES net_ports(id),
        floating_ip_address TEXT NOT NULL,
        port_id TEXT REFERENCES net_ports(id),
        fixed_ip_address TEXT,
        router_id TEXT,
        description TEXT NOT NULL DEFAULT '',
        revision INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX net_floating_ips_port ON net_floating_ips (port_id, fixed_ip_address)
        WHERE port_id IS NOT NULL;
    CREATE TABLE net_tags (
        resource_id TEXT NOT NULL,
        tag TEXT NOT NULL,
        PRIMARY KEY (resource_id, tag)
    );
    CREATE TABLE net_quotas (
        project_id TEXT NOT NULL,
        resource TEXT NOT NULL,
        hard_limit INTEGER NOT NULL,
        PRIMARY KEY (project_id, resource)
    );
    INSERT INTO net_networks (id, project_id, name, is_default, created_at, updated_at)
        SELECT id, COALESCE(project_id, ''), name, name = 'private', created_at, created_at
        FROM networks;
    INSERT INTO net_subnets (id, network_id, project_id, name, cidr, gateway_ip,
            allocation_pools, revision, created_at, updated_at)
        SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4'
                || substr(hex(randomblob(2)), 2) || '-a' || substr(hex(randomblob(2)), 2)
                || '-' || hex(randomblob(6))),
            id, COALESCE(project_id, ''), name || '-subnet', cidr, gateway,
            '[{\"start\":\"' || substr(cidr, 1, instr(cidr, '.0.0/16') - 1) || '.0.10\",\"end\":\"'
                || substr(cidr, 1, instr(cidr, '.0.0/16') - 1) || '.255.254\"}]',
            0, created_at, created_at
        FROM networks;
    INSERT INTO net_ports (id, network_id, project_id, mac_address, status, device_id,
            device_owner, position, compute_owned, created_at, updated_at)
        SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4'
                || substr(hex(randomblob(2)), 2) || '-a' || substr(hex(randomblob(2)), 2)
                || '-' || hex(randomblob(6))),
            p.network_id, s.project_id, p.mac, 'ACTIVE', p.server_id, 'compute:nova',
            p.position, 1, s.created_at, s.created_at
        FROM ports p JOIN servers s ON s.id = p.server_id;
    INSERT INTO net_ips (port_id, subnet_id, network_id, ip_address)
        SELECT np.id, ns.id, p.network_id, p.address
        FROM ports p JOIN net_ports np ON np.mac_address = p.mac
        JOIN net_subnets ns ON ns.network_id = p.network_id;
    INSERT INTO net_security_groups (id, project_id, name, description, created_at, updated_at)
        SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4'
                || substr(hex(randomblob(2)), 2) || '-a' || substr(hex(randomblob(2)), 2)
                || '-' || hex(randomblob(6))),
            project_id, 'default', 'Default security group',
            strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
        FROM (SELECT DISTINCT project_id FROM net_networks WHERE project_id != '');
    INSERT INTO net_sg_rules (id, project_id, security_group_id, direction, ethertype,
            remote_group_id, created_at, updated_at)
        SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4'
                || substr(hex(randomblob(2)), 2) || '-a' || substr(hex(randomblob(2)), 2)
                || '-' || hex(randomblob(6))),
            g.project_id, g.id, d.direction, d.ethertype,
            CASE WHEN d.direction = 'ingress' THEN g.id END, g.created_at, g.created_at
        FROM net_security_groups g,
            (SELECT 'ingress' AS direction, 'IPv4' AS ethertype UNION ALL
             SELECT 'ingress', 'IPv6' UNION ALL SELECT 'egress', 'IPv4' UNION ALL
             SELECT 'egress', 'IPv6') d;
    INSERT INTO net_port_security_groups (port_id, security_group_id)
        SELECT p.id, g.id FROM net_ports p
        JOIN net_security_groups g ON g.project_id = p.project_id AND g.name = 'default';
    DROP TABLE ports;
    DROP TABLE networks;",
    // Host aggregates (os-aggregates) and quota classes (os-quota-class-sets; the class
    // `default` holds the defaults of every project without its own limit).
    "CREATE TABLE aggregates (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        uuid TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        updated_at TEXT
    );
    CREATE TABLE aggregate_hosts (
        aggregate_id INTEGER NOT NULL REFERENCES aggregates(id) ON DELETE CASCADE,
        host TEXT NOT NULL,
        position INTEGER NOT NULL,
        PRIMARY KEY (aggregate_id, host)
    );
    CREATE INDEX aggregate_hosts_host ON aggregate_hosts (host);
    CREATE TABLE aggregate_metadata (
        aggregate_id INTEGER NOT NULL REFERENCES aggregates(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (aggregate_id, key)
    );
    CREATE TABLE quota_classes (
        class_name TEXT NOT NULL,
        resource TEXT NOT NULL,
        hard_limit INTEGER NOT NULL,
        PRIMARY KEY (class_name, resource)
    );",
    // Block storage: volume types (the default `__DEFAULT__`), volumes, snapshots,
    // attachments, per-project quotas and every status transition of a volume.
    "CREATE TABLE volume_types (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT,
        is_public INTEGER NOT NULL DEFAULT 1,
        is_default INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO volume_types (id, name, description, is_public, is_default)
        VALUES ('5d1a4c2e-7f3b-4e6a-9c8d-0b1a2c3d4e5f', '__DEFAULT__', 'Default Volume Type', 1, 1);
    CREATE TABLE volumes (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        name TEXT,
        description TEXT,
        size_gb INTEGER NOT NULL,
        status TEXT NOT NULL,
        volume_type_id TEXT NOT NULL REFERENCES volume_types(id),
        availability_zone TEXT NOT NULL,
        bootable INTEGER NOT NULL DEFAULT 0,
        read_only INTEGER NOT NULL DEFAULT 0,
        metadata TEXT NOT NULL DEFAULT '{}',
        image_metadata TEXT NOT NULL DEFAULT '{}',
        source_volid TEXT,
        snapshot_id TEXT,
        image_id TEXT,
        path TEXT,
        format TEXT NOT NULL DEFAULT 'raw',
        created_at TEXT NOT NULL,
        updated_at TEXT
    );
    CREATE INDEX volumes_by_project ON volumes(project_id);
    CREATE TABLE volume_snapshots (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        volume_id TEXT NOT NULL REFERENCES volumes(id),
        name TEXT,
        description TEXT,
        size_gb INTEGER NOT NULL,
        status TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        path TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT
    );
    CREATE INDEX volume_snapshots_by_volume ON volume_snapshots(volume_id);
    CREATE TABLE volume_attachments (
        id TEXT PRIMARY KEY,
        volume_id TEXT NOT NULL REFERENCES volumes(id),
        server_id TEXT NOT NULL,
        device TEXT,
        attach_mode TEXT NOT NULL DEFAULT 'rw',
        tag TEXT,
        delete_on_termination INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        attached_at TEXT NOT NULL,
        UNIQUE (volume_id, server_id)
    );
    CREATE INDEX volume_attachments_by_server ON volume_attachments(server_id);
    CREATE TABLE volume_quotas (
        project_id TEXT NOT NULL,
        resource TEXT NOT NULL,
        hard_limit INTEGER NOT NULL,
        PRIMARY KEY (project_id, resource)
    );
    CREATE TABLE volume_status_log (
        volume_id TEXT NOT NULL,
        from_status TEXT,
        to_status TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX volume_status_log_by_volume ON volume_status_log(volume_id);",
    // 13: a server's boot volume is the attachment with boot index 0 (block device mapping).
    "ALTER TABLE volume_attachments ADD COLUMN boot_index INTEGER;",
    // 14: Nova's auto_disk_config and the request spec's availability zone of each server.
    "ALTER TABLE servers ADD COLUMN auto_disk_config INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE servers ADD COLUMN pinned_availability_zone TEXT;",
];

/// The schema version this build of onebox writes.
pub const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

pub(crate) fn current(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// How many migrations `apply` would run on this database.
pub fn pending(conn: &Connection) -> Result<i64> {
    let v = current(conn)?;
    if v > LATEST_VERSION {
        return Err(Error::TooNew {
            found: v,
            known: LATEST_VERSION,
        });
    }
    Ok(LATEST_VERSION - v)
}

pub(crate) fn apply(conn: &mut Connection) -> Result<usize> {
    pending(conn)?;
    let from = current(conn)?;
    let mut ran = 0;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        let version = i as i64 + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "applied schema migration");
        ran += 1;
    }
    Ok(ran)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_are_idempotent() {
        let mut conn = Connection::open_in_memory().expect("open");
        assert_eq!(apply(&mut conn).expect("first"), MIGRATIONS.len());
        assert_eq!(apply(&mut conn).expect("second"), 0);
        assert_eq!(current(&conn).expect("version"), LATEST_VERSION);
    }

    #[test]
    fn a_newer_database_is_refused() {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.pragma_update(None, "user_version", LATEST_VERSION + 1)
            .expect("set");
        assert!(matches!(apply(&mut conn), Err(Error::TooNew { .. })));
    }
}
