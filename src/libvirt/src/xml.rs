//! Domain XML from an instance's spec.

use std::fmt::Write;
use std::path::{Path, PathBuf};

/// A guest's network interface: its bridge, its MAC and the host-side tap libvirt makes for
/// it (named by onebox, so the tap's rules in onebox's bridge table exist before it does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nic {
    pub bridge: String,
    pub mac: String,
    pub tap: String,
}

impl Nic {
    /// The `<interface>` element, as a definition holds it and as a hot plug passes it.
    pub fn to_xml(&self) -> String {
        let mut x = String::from("    <interface type='bridge'>\n");
        let _ = writeln!(x, "      <source bridge='{}'/>", esc(&self.bridge));
        let _ = writeln!(x, "      <mac address='{}'/>", esc(&self.mac));
        let _ = writeln!(x, "      <target dev='{}'/>", esc(&self.tap));
        x.push_str("      <model type='virtio'/>\n    </interface>\n");
        x
    }
}

/// A block-storage volume as a guest disk (virtio-blk): a file or a block device, its
/// format given (never probed), the volume id as the disk's serial (the guest finds it as
/// `/dev/disk/by-id/virtio-<first 20 characters>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeDisk {
    pub source: PathBuf,
    /// A block device (`<disk type='block'>`) rather than a file.
    pub block: bool,
    /// `raw` or `qcow2`.
    pub format: String,
    /// The target device name (`vdb`).
    pub target: String,
    pub serial: String,
    pub read_only: bool,
    /// `cache='none' io='native'` (O_DIRECT works on the source), else `writethrough`.
    pub direct: bool,
    /// The guest boots from this disk (`<boot order='1'/>`; no `<os><boot>` then).
    pub boot: bool,
}

impl VolumeDisk {
    /// The `<disk>` element, as a definition holds it and as a hot plug passes it.
    pub fn to_xml(&self) -> String {
        let (kind, attr) = if self.block {
            ("block", "dev")
        } else {
            ("file", "file")
        };
        let mut x = format!("    <disk type='{kind}' device='disk'>\n");
        let cache = if self.direct {
            "cache='none' io='native'"
        } else {
            "cache='writethrough'"
        };
        let _ = writeln!(
            x,
            "      <driver name='qemu' type='{}' {cache}/>",
            esc(&self.format)
        );
        let _ = writeln!(x, "      <source {attr}='{}'/>", p(&self.source));
        let _ = writeln!(
            x,
            "      <target dev='{}' bus='virtio'/>",
            esc(&self.target)
        );
        let _ = writeln!(x, "      <serial>{}</serial>", esc(&self.serial));
        if self.boot {
            x.push_str("      <boot order='1'/>\n");
        }
        if self.read_only {
            x.push_str("      <readonly/>\n");
        }
        x.push_str("    </disk>\n");
        x
    }
}

/// Everything the domain definition is made of, already resolved to host paths.
#[derive(Clone, Debug)]
pub struct DomainDef {
    pub name: String,
    pub uuid: String,
    pub virt_type: String,
    pub vcpus: u32,
    pub ram_mb: u64,
    pub disk: Option<PathBuf>,
    /// A second qcow2 disk (`vdb`): the server's own disk while a rescue system boots from
    /// `disk`.
    pub data_disk: Option<PathBuf>,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub cmdline: Option<String>,
    pub config_drive: Option<PathBuf>,
    /// Attached block-storage volumes, after the server's own disks.
    pub volumes: Vec<VolumeDisk>,
    pub nics: Vec<Nic>,
    pub console_log: PathBuf,
    /// Shown by `virsh list --title`; the server's name.
    pub title: String,
    /// Which onebox owns the domain (its data directory): several boxes may share a libvirtd.
    pub owner: String,
}

/// The Unix socket `name` beside the console log, when its path fits a socket address.
pub fn console_socket(console_log: &Path, name: &str) -> Option<PathBuf> {
    let sock = console_log.with_file_name(name);
    // sun_path holds 108 bytes with the terminating NUL.
    (sock.as_os_str().len() < 108).then_some(sock)
}

/// Escapes text for XML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

fn p(path: &std::path::Path) -> String {
    esc(&path.to_string_lossy())
}

impl DomainDef {
    pub fn to_xml(&self) -> String {
        let mut x = String::new();
        let _ = writeln!(x, "<domain type='{}'>", esc(&self.virt_type));
        let _ = writeln!(x, "  <name>{}</name>", esc(&self.name));
        let _ = writeln!(x, "  <uuid>{}</uuid>", esc(&self.uuid));
        let _ = writeln!(x, "  <title>{}</title>", esc(&self.title));
        let _ = writeln!(x, "  <description>{}</description>", esc(&self.owner));
        let _ = writeln!(x, "  <memory unit='MiB'>{}</memory>", self.ram_mb);
        let _ = writeln!(x, "  <vcpu>{}</vcpu>", self.vcpus.max(1));
        // cloud-init's OpenStack datasource recognises the guest by this product name.
        x.push_str("  <sysinfo type='smbios'>\n    <system>\n");
        x.push_str("      <entry name='manufacturer'>OpenStack Foundation</entry>\n");
        x.push_str("      <entry name='product'>OpenStack Compute</entry>\n");
        x.push_str("      <entry name='version'>onebox</entry>\n");
        let _ = writeln!(x, "      <entry name='serial'>{}</entry>", esc(&self.uuid));
        let _ = writeln!(x, "      <entry name='uuid'>{}</entry>", esc(&self.uuid));
        x.push_str("      <entry name='family'>Virtual Machine</entry>\n");
        x.push_str("    </system>\n  </sysinfo>\n");
        x.push_str("  <os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n");
        if let Some(k) = &self.kernel {
            let _ = writeln!(x, "    <kernel>{}</kernel>", p(k));
            if let Some(i) = &self.initrd {
                let _ = writeln!(x, "    <initrd>{}</initrd>", p(i));
            }
            if let Some(c) = &self.cmdline {
                let _ = writeln!(x, "    <cmdline>{}</cmdline>", esc(c));
            }
        } else if !self.volumes.iter().any(|v| v.boot) {
            // A boot volume carries its own boot order; libvirt refuses both.
            x.push_str("    <boot dev='hd'/>\n");
        }
        x.push_str("    <smbios mode='sysinfo'/>\n  </os>\n");
        // ACPI lets the guest power itself off and answer the power button (soft stop).
        x.push_str("  <features>\n    <acpi/>\n  </features>\n");
        if self.virt_type == "kvm" {
            x.push_str("  <cpu mode='host-model'/>\n");
        }
        x.push_str("  <clock offset='utc'/>\n");
        x.push_str("  <on_poweroff>destroy</on_poweroff>\n");
        x.push_str("  <on_reboot>restart</on_reboot>\n");
        x.push_str("  <on_crash>destroy</on_crash>\n");
        x.push_str("  <devices>\n");
        if let Some(d) = &self.disk {
            x.push_str("    <disk type='file' device='disk'>\n");
            x.push_str("      <driver name='qemu' type='qcow2'/>\n");
            let _ = writeln!(x, "      <source file='{}'/>", p(d));
            x.push_str("      <target dev='vda' bus='virtio'/>\n    </disk>\n");
        }
        if let Some(d) = &self.data_disk {
            x.push_str("    <disk type='file' device='disk'>\n");
            x.push_str("      <driver name='qemu' type='qcow2'/>\n");
            let _ = writeln!(x, "      <source file='{}'/>", p(d));
            x.push_str("      <target dev='vdb' bus='virtio'/>\n    </disk>\n");
        }
        if let Some(c) = &self.config_drive {
            x.push_str("    <disk type='file' device='cdrom'>\n");
            x.push_str("      <driver name='qemu' type='raw'/>\n");
            let _ = writeln!(x, "      <source file='{}'/>", p(c));
            x.push_str("      <target dev='hdd' bus='ide'/>\n      <readonly/>\n    </disk>\n");
        }
        for v in &self.volumes {
            x.push_str(&v.to_xml());
        }
        for n in &self.nics {
            x.push_str(&n.to_xml());
        }
        // The serial console is a Unix socket beside the log for interactive sessions (the
        // console proxy connects to it), and every byte the guest writes goes to the log,
        // which survives reboots (append), whether or not a session is open. A path too long
        // for a socket address leaves the console a plain file.
        match console_socket(&self.console_log, "serial.sock") {
            Some(sock) => {
                x.push_str("    <serial type='unix'>\n");
                let _ = writeln!(x, "      <source mode='bind' path='{}'/>", p(&sock));
                let _ = writeln!(
                    x,
                    "      <log file='{}' append='on'/>",
                    p(&self.console_log)
                );
            }
            None => {
                x.push_str("    <serial type='file'>\n");
                let _ = writeln!(
                    x,
                    "      <source path='{}' append='on'/>",
                    p(&self.console_log)
                );
            }
        }
        x.push_str("      <target port='0'/>\n    </serial>\n");
        // The screen, for the VNC console: QEMU's VNC server on a Unix socket only (no TCP
        // port on the host).
        if let Some(sock) = console_socket(&self.console_log, "vnc.sock") {
            let _ = writeln!(x, "    <graphics type='vnc' socket='{}'/>", p(&sock));
            x.push_str("    <video>\n      <model type='vga'/>\n    </video>\n");
        }
        x.push_str("    <memballoon model='none'/>\n");
        x.push_str("  </devices>\n</domain>\n");
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_xml() {
        let d = DomainDef {
            name: "onebox-1".into(),
            uuid: "6f1a5a6e-0000-4000-8000-000000000001".into(),
            virt_type: "qemu".into(),
            vcpus: 2,
            ram_mb: 256,
            disk: Some("/d/disk".into()),
            data_disk: None,
            kernel: Some("/c/k".into()),
            initrd: Some("/c/r".into()),
            cmdline: Some("console=ttyS0 a<b".into()),
            config_drive: Some("/d/config.iso".into()),
            volumes: vec![],
            nics: vec![Nic {
                bridge: "obr123".into(),
                mac: "fa:16:3e:00:00:01".into(),
                tap: "obt6f1a5a6e000".into(),
            }],
            console_log: "/d/console.log".into(),
            title: "web & db".into(),
            owner: "onebox /var/lib/onebox".into(),
        };
        let x = d.to_xml();
        assert!(x.contains("<domain type='qemu'>"));
        assert!(x.contains("<memory unit='MiB'>256</memory>"));
        assert!(x.contains("<vcpu>2</vcpu>"));
        assert!(x.contains("<entry name='product'>OpenStack Compute</entry>"));
        assert!(x.contains("<entry name='serial'>6f1a5a6e-0000-4000-8000-000000000001</entry>"));
        assert!(x.contains("<kernel>/c/k</kernel>"));
        assert!(x.contains("<cmdline>console=ttyS0 a&lt;b</cmdline>"));
        assert!(x.contains("<title>web &amp; db</title>"));
        assert!(x.contains("<source bridge='obr123'/>"));
        assert!(x.contains("<mac address='fa:16:3e:00:00:01'/>"));
        assert!(x.contains("<target dev='obt6f1a5a6e000'/>"));
        assert!(x.contains("<source mode='bind' path='/d/serial.sock'/>"));
        assert!(x.contains("<log file='/d/console.log' append='on'/>"));
        assert!(x.contains("<graphics type='vnc' socket='/d/vnc.sock'/>"));
        assert!(x.contains("device='cdrom'"));
        assert!(!x.contains("<boot dev='hd'/>"));
        assert!(!x.contains("vdb"));
    }

    #[test]
    fn a_rescue_boots_its_disk_first_with_the_servers_disk_second() {
        let d = DomainDef {
            name: "onebox-1".into(),
            uuid: "6f1a5a6e-0000-4000-8000-000000000001".into(),
            virt_type: "qemu".into(),
            vcpus: 1,
            ram_mb: 128,
            disk: Some("/d/disk.rescue".into()),
            data_disk: Some("/d/disk".into()),
            kernel: None,
            initrd: None,
            cmdline: None,
            config_drive: None,
            volumes: vec![],
            nics: vec![],
            console_log: "/d/console.log".into(),
            title: "t".into(),
            owner: "onebox /x".into(),
        };
        let x = d.to_xml();
        let first = x
            .find("<source file='/d/disk.rescue'/>")
            .expect("rescue disk");
        let second = x.find("<source file='/d/disk'/>").expect("own disk");
        assert!(first < second);
        assert!(x[first..].starts_with("<source file='/d/disk.rescue'/>\n      <target dev='vda'"));
        assert!(x[second..].starts_with("<source file='/d/disk'/>\n      <target dev='vdb'"));
        assert!(x.contains("<boot dev='hd'/>"));
    }

    #[test]
    fn volumes_are_virtio_disks_with_their_id_as_serial() {
        let vol = |target: &str, boot: bool| VolumeDisk {
            source: "/v/vol-1".into(),
            block: false,
            format: "raw".into(),
            target: target.into(),
            serial: "0b1e2c3d-0000-4000-8000-00000000000a".into(),
            read_only: false,
            direct: true,
            boot,
        };
        let x = vol("vdb", false).to_xml();
        assert!(x.contains("<disk type='file' device='disk'>"), "{x}");
        assert!(x.contains("<driver name='qemu' type='raw' cache='none' io='native'/>"));
        assert!(x.contains("<source file='/v/vol-1'/>"));
        assert!(x.contains("<target dev='vdb' bus='virtio'/>"));
        assert!(x.contains("<serial>0b1e2c3d-0000-4000-8000-00000000000a</serial>"));
        assert!(!x.contains("<readonly/>") && !x.contains("<boot"));
        let ro = VolumeDisk {
            block: true,
            read_only: true,
            direct: false,
            format: "qcow2".into(),
            source: "/dev/vg/lv".into(),
            ..vol("vdc", false)
        }
        .to_xml();
        assert!(ro.contains("<disk type='block' device='disk'>"), "{ro}");
        assert!(ro.contains("<source dev='/dev/vg/lv'/>"));
        assert!(ro.contains("type='qcow2' cache='writethrough'/>"));
        assert!(ro.contains("<readonly/>"));

        // Booted from a volume: no server disk, the volume carries the boot order.
        let d = DomainDef {
            name: "onebox-1".into(),
            uuid: "6f1a5a6e-0000-4000-8000-000000000001".into(),
            virt_type: "qemu".into(),
            vcpus: 1,
            ram_mb: 128,
            disk: None,
            data_disk: None,
            kernel: None,
            initrd: None,
            cmdline: None,
            config_drive: None,
            volumes: vec![vol("vda", true), vol("vdb", false)],
            nics: vec![],
            console_log: "/d/console.log".into(),
            title: "t".into(),
            owner: "onebox /x".into(),
        };
        let x = d.to_xml();
        assert!(!x.contains("<boot dev='hd'/>"), "{x}");
        assert_eq!(x.matches("<boot order='1'/>").count(), 1);
        assert!(!x.contains("/d/disk"));
        assert!(
            x.find("<target dev='vda'").expect("vda") < x.find("<target dev='vdb'").expect("vdb")
        );
    }
}
