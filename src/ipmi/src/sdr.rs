//! The Sensor Data Record repository walk and sensor readings.

use crate::session::Session;
use crate::{Error, Result};

/// One SDR, with what this client uses of it.
#[derive(Clone, Debug, PartialEq)]
pub struct SdrRecord {
    pub record_id: u16,
    pub record_type: u8,
    pub name: String,
    /// For sensor records (types 1, 2, 3): owner-relative sensor number.
    pub sensor_number: Option<u8>,
    /// Full sensor records (type 1): the reading conversion.
    pub conversion: Option<Conversion>,
    pub unit: Option<String>,
    pub raw: Vec<u8>,
}

/// y = (M·x + B·10^Bexp)·10^Rexp for a linear full sensor record.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conversion {
    pub m: i16,
    pub b: i16,
    pub b_exp: i8,
    pub r_exp: i8,
    pub signed: bool,
}

impl Conversion {
    pub fn apply(&self, raw: u8) -> f64 {
        let x = if self.signed {
            raw as i8 as f64
        } else {
            raw as f64
        };
        (self.m as f64 * x + self.b as f64 * 10f64.powi(self.b_exp as i32))
            * 10f64.powi(self.r_exp as i32)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SensorReading {
    pub name: String,
    pub number: u8,
    /// Converted value, for full sensor records with an available reading.
    pub value: Option<f64>,
    pub unit: Option<String>,
    pub raw: Option<u8>,
}

fn sign_extend(v: u16, bits: u32) -> i16 {
    let shift = 16 - bits;
    ((v << shift) as i16) >> shift
}

fn unit_name(code: u8) -> Option<&'static str> {
    Some(match code {
        1 => "degrees C",
        2 => "degrees F",
        4 => "Volts",
        5 => "Amps",
        6 => "Watts",
        18 => "RPM",
        _ => return None,
    })
}

fn id_string(rec: &[u8], at: usize) -> String {
    match rec.get(at) {
        Some(tl) => {
            let len = (tl & 0x1f) as usize;
            let s = rec
                .get(at + 1..(at + 1 + len).min(rec.len()))
                .unwrap_or(&[]);
            String::from_utf8_lossy(s)
                .trim_end_matches('\0')
                .to_string()
        }
        None => String::new(),
    }
}

/// Decodes one record (header included).
pub fn parse_record(rec: &[u8]) -> Option<SdrRecord> {
    if rec.len() < 5 {
        return None;
    }
    let record_id = u16::from_le_bytes([rec[0], rec[1]]);
    let record_type = rec[3];
    let mut r = SdrRecord {
        record_id,
        record_type,
        name: String::new(),
        sensor_number: None,
        conversion: None,
        unit: None,
        raw: rec.to_vec(),
    };
    match record_type {
        0x01 if rec.len() >= 48 => {
            r.sensor_number = Some(rec[7]);
            r.name = id_string(rec, 47);
            let m = sign_extend(rec[24] as u16 | (((rec[25] >> 6) as u16) << 8), 10);
            let b = sign_extend(rec[26] as u16 | (((rec[27] >> 6) as u16) << 8), 10);
            let r_exp = sign_extend((rec[29] >> 4) as u16, 4) as i8;
            let b_exp = sign_extend((rec[29] & 0x0f) as u16, 4) as i8;
            let linear = rec[23] & 0x7f == 0;
            let format = rec[20] >> 6;
            if linear && format != 3 {
                r.conversion = Some(Conversion {
                    m,
                    b,
                    b_exp,
                    r_exp,
                    signed: format == 2,
                });
            }
            r.unit = unit_name(rec[21]).map(str::to_string);
        }
        0x02 if rec.len() >= 32 => {
            r.sensor_number = Some(rec[7]);
            r.name = id_string(rec, 31);
        }
        0x03 if rec.len() >= 17 => {
            r.sensor_number = Some(rec[7]);
            r.name = id_string(rec, 16);
        }
        0x12 if rec.len() >= 16 => {
            r.name = id_string(rec, 15);
        }
        _ => {}
    }
    Some(r)
}

/// Bytes asked for per Get SDR: small enough for every BMC (some refuse whole records).
const CHUNK: u8 = 16;

impl Session {
    fn reserve_sdr(&mut self) -> Result<[u8; 2]> {
        let d = self.request(0x0a, 0x22, &[])?;
        if d.len() < 2 {
            return Err(Error::Protocol(
                "short Reserve SDR Repository answer".into(),
            ));
        }
        Ok([d[0], d[1]])
    }

    /// Reads every record of the SDR repository.
    pub fn sdr_records(&mut self) -> Result<Vec<SdrRecord>> {
        let mut out = Vec::new();
        let mut resv = self.reserve_sdr()?;
        let mut id: u16 = 0;
        let mut guard = 0;
        while id != 0xffff && guard < 1024 {
            guard += 1;
            match self.read_record(&mut resv, id) {
                Ok((next, rec)) => {
                    if let Some(r) = parse_record(&rec) {
                        out.push(r);
                    }
                    id = next;
                }
                // An empty repository answers the first Get SDR with "not present".
                Err(Error::Completion { code: 0xcb, .. }) if out.is_empty() => break,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn read_record(&mut self, resv: &mut [u8; 2], id: u16) -> Result<(u16, Vec<u8>)> {
        let idb = id.to_le_bytes();
        for _ in 0..3 {
            let header = self.request_raw(0x0a, 0x23, &[resv[0], resv[1], idb[0], idb[1], 0, 5])?;
            if header.completion == 0xc5 {
                *resv = self.reserve_sdr()?;
                continue;
            }
            if header.completion != 0 {
                return Err(Error::Completion {
                    netfn: 0x0a,
                    cmd: 0x23,
                    code: header.completion,
                });
            }
            if header.data.len() < 7 {
                return Err(Error::Protocol("short SDR header".into()));
            }
            let next = u16::from_le_bytes([header.data[0], header.data[1]]);
            let mut rec = header.data[2..7].to_vec();
            let total = 5 + rec[4] as usize;
            let mut cancelled = false;
            while rec.len() < total {
                let off = rec.len() as u8;
                let n = CHUNK.min((total - rec.len()) as u8);
                let part =
                    self.request_raw(0x0a, 0x23, &[resv[0], resv[1], idb[0], idb[1], off, n])?;
                if part.completion == 0xc5 {
                    cancelled = true;
                    break;
                }
                if part.completion != 0 || part.data.len() < 3 {
                    return Err(Error::Completion {
                        netfn: 0x0a,
                        cmd: 0x23,
                        code: part.completion,
                    });
                }
                rec.extend_from_slice(&part.data[2..]);
            }
            if cancelled {
                *resv = self.reserve_sdr()?;
                continue;
            }
            return Ok((next, rec));
        }
        Err(Error::Protocol(
            "SDR reservation kept being cancelled".into(),
        ))
    }

    /// Raw reading of one sensor; `None` when the BMC says the reading is unavailable.
    pub fn sensor_raw(&mut self, number: u8) -> Result<Option<u8>> {
        let r = self.request_raw(0x04, 0x2d, &[number])?;
        match r.completion {
            0 if r.data.len() >= 2 => Ok((r.data[1] & 0x20 == 0).then_some(r.data[0])),
            0xcb | 0xcd => Ok(None),
            code => Err(Error::Completion {
                netfn: 0x04,
                cmd: 0x2d,
                code,
            }),
        }
    }

    /// Walks the SDR repository and reads every sensor it names.
    pub fn sensors(&mut self) -> Result<Vec<SensorReading>> {
        let mut out = Vec::new();
        for rec in self.sdr_records()? {
            let Some(number) = rec.sensor_number else {
                continue;
            };
            if !matches!(rec.record_type, 0x01 | 0x02) {
                continue;
            }
            let raw = self.sensor_raw(number)?;
            out.push(SensorReading {
                value: match (raw, rec.conversion) {
                    (Some(x), Some(c)) => Some(c.apply(x)),
                    _ => None,
                },
                name: rec.name,
                number,
                unit: rec.unit,
                raw,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_sensor_record_conversion() {
        let mut rec = vec![0u8; 54];
        rec[..5].copy_from_slice(&[0x02, 0x00, 0x51, 0x01, 49]);
        rec[7] = 1; // sensor number
        rec[21] = 1; // degrees C
        rec[24] = 2; // M = 2
        rec[26] = 0xfb; // B low byte
        rec[27] = 0xc0; // B high bits -> B = -5 (10-bit)
        rec[29] = 0xf0; // R exp = -1, B exp = 0
        rec[47] = 0xc6;
        rec[48..54].copy_from_slice(b"MBTemp");
        let r = parse_record(&rec).expect("record");
        assert_eq!(r.name, "MBTemp");
        assert_eq!(r.sensor_number, Some(1));
        assert_eq!(r.unit.as_deref(), Some("degrees C"));
        let c = r.conversion.expect("conversion");
        assert_eq!((c.m, c.b, c.r_exp, c.b_exp), (2, -5, -1, 0));
        assert!((c.apply(45) - 8.5).abs() < 1e-9);
    }
}
