//! Typed IPMI commands: device id, chassis status and control, boot options, SDR walk and
//! sensor readings.

use crate::session::Session;
use crate::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceId {
    pub device_id: u8,
    pub device_revision: u8,
    pub firmware_major: u8,
    pub firmware_minor: u8,
    /// "2.0" for an IPMI 2.0 BMC.
    pub ipmi_version: String,
    pub manufacturer_id: u32,
    pub product_id: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChassisControl {
    PowerOff,
    PowerOn,
    PowerCycle,
    HardReset,
    /// ACPI soft shutdown.
    Soft,
}

impl ChassisControl {
    fn code(self) -> u8 {
        match self {
            ChassisControl::PowerOff => 0x00,
            ChassisControl::PowerOn => 0x01,
            ChassisControl::PowerCycle => 0x02,
            ChassisControl::HardReset => 0x03,
            ChassisControl::Soft => 0x05,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootDevice {
    Pxe,
    Disk,
    Cdrom,
    Bios,
}

impl BootDevice {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pxe" => Some(BootDevice::Pxe),
            "disk" => Some(BootDevice::Disk),
            "cdrom" => Some(BootDevice::Cdrom),
            "bios" => Some(BootDevice::Bios),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BootDevice::Pxe => "pxe",
            BootDevice::Disk => "disk",
            BootDevice::Cdrom => "cdrom",
            BootDevice::Bios => "bios",
        }
    }

    /// The boot device selector, bits 5:2 of boot flags data byte 2.
    fn selector(self) -> u8 {
        match self {
            BootDevice::Pxe => 0x04,
            BootDevice::Disk => 0x08,
            BootDevice::Cdrom => 0x14,
            BootDevice::Bios => 0x18,
        }
    }

    fn from_selector(b: u8) -> Option<Self> {
        match b & 0x3c {
            0x04 => Some(BootDevice::Pxe),
            0x08 => Some(BootDevice::Disk),
            0x14 => Some(BootDevice::Cdrom),
            0x18 => Some(BootDevice::Bios),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootSetting {
    pub device: Option<BootDevice>,
    pub persistent: bool,
    pub uefi: bool,
}

/// The boot flags parameter (5) data for Set System Boot Options.
pub fn boot_flags(device: BootDevice, persistent: bool, uefi: bool) -> [u8; 6] {
    let mut b1 = 0x80;
    if persistent {
        b1 |= 0x40;
    }
    if uefi {
        b1 |= 0x20;
    }
    [0x05, b1, device.selector(), 0, 0, 0]
}

impl Session {
    pub fn device_id(&mut self) -> Result<DeviceId> {
        let d = self.request(0x06, 0x01, &[])?;
        if d.len() < 11 {
            return Err(Error::Protocol(format!(
                "short Get Device ID answer ({} bytes)",
                d.len()
            )));
        }
        Ok(DeviceId {
            device_id: d[0],
            device_revision: d[1] & 0x0f,
            firmware_major: d[2] & 0x7f,
            firmware_minor: d[3],
            ipmi_version: format!("{}.{}", d[4] & 0x0f, d[4] >> 4),
            manufacturer_id: u32::from_le_bytes([d[6], d[7], d[8], 0]),
            product_id: u16::from_le_bytes([d[9], d[10]]),
        })
    }

    /// Whether the chassis power is on (Get Chassis Status, byte 1 bit 0).
    pub fn power_is_on(&mut self) -> Result<bool> {
        let d = self.request(0x00, 0x01, &[])?;
        d.first()
            .map(|b| b & 1 == 1)
            .ok_or_else(|| Error::Protocol("empty Get Chassis Status answer".into()))
    }

    pub fn chassis_control(&mut self, c: ChassisControl) -> Result<()> {
        self.request(0x00, 0x02, &[c.code()]).map(|_| ())
    }

    pub fn set_boot_device(
        &mut self,
        device: BootDevice,
        persistent: bool,
        uefi: bool,
    ) -> Result<()> {
        self.request(0x00, 0x08, &boot_flags(device, persistent, uefi))
            .map(|_| ())
    }

    pub fn boot_device(&mut self) -> Result<BootSetting> {
        let d = self.request(0x00, 0x09, &[0x05, 0, 0])?;
        if d.len() < 4 {
            return Err(Error::Protocol("short boot flags answer".into()));
        }
        Ok(BootSetting {
            device: BootDevice::from_selector(d[3]),
            persistent: d[2] & 0x40 != 0,
            uefi: d[2] & 0x20 != 0,
        })
    }
}
