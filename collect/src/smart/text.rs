//! Parser for smartctl's human-readable output (`-a`, `-x`, `-H`, `-A`, `-f brief`, `-i`).
//!
//! smartctl's text is a sequence of sections, each a run of `Key: value` lines or a table.
//! We walk it line by line, keeping track of which section we are in, and hand each line
//! to the `nom` parser for its shape (see [`rows`]). Sections we do not model (device
//! statistics, SCT history, GPL directory, power states …) are skipped: a new smartctl
//! section must never break health monitoring. Only input with no smartctl content at all,
//! or a truncated row inside a table we model, is an error.
//!
//! Captures arrive mangled in the ways real pastes are: CRLF line endings (Windows),
//! trailing padding, whitespace collapsed to single spaces, a shell prompt before the
//! banner, no banner at all. Keys are matched after collapsing whitespace and rows are
//! tokenized, so all of these read the same.

mod rows;

use crate::smart::error::{Section, SmartParseError, snippet};
use crate::smart::model::{
    AtaSmart, CriticalWarning, DeviceProblem, NvmeHealth, OverallHealth, PowerMode, Protocol,
    Rotation, ScsiHealth, SelfTestExecution, SmartReport,
};
use crate::smart::values;

/// Parses one smartctl text output into a [`SmartReport`].
///
/// Error outputs (open failed, unknown USB bridge, standby, no SMART) are *reports* with
/// [`SmartReport::problems`] filled in, so the verdict can say why it knows nothing.
pub fn parse_text(input: &str) -> Result<SmartReport, SmartParseError> {
    if input.trim().is_empty() {
        return Err(SmartParseError::Empty);
    }
    let mut parser = TextParser::default();
    for (index, raw_line) in input.split('\n').enumerate() {
        parser.line(index + 1, raw_line.trim_end_matches(['\r', ' ', '\t']))?;
    }
    if !parser.recognized {
        let (line, text) = input
            .split('\n')
            .enumerate()
            .find(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| (i + 1, l))
            .unwrap_or((1, ""));
        return Err(SmartParseError::NotSmartctl {
            line,
            snippet: snippet(text),
        });
    }
    Ok(parser.finish())
}

#[derive(Default)]
struct TextParser {
    report: SmartReport,
    section: Option<Section>,
    recognized: bool,
    sct_temperature: Option<i32>,
}

/// `Key:   value` with the key's whitespace collapsed and lower-cased.
fn key_value(line: &str) -> Option<(String, &str)> {
    let at = line.find(':')?;
    let key = &line[..at];
    if key.trim().is_empty()
        || !key
            .trim_start()
            .starts_with(|c: char| c.is_ascii_alphabetic())
    {
        return None;
    }
    let key = key
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase();
    Some((key, line[at + 1..].trim()))
}

fn text_value(value: &str) -> Option<String> {
    let v = value.trim();
    (!v.is_empty()).then(|| v.to_owned())
}

impl TextParser {
    fn ata(&mut self) -> &mut AtaSmart {
        self.report.ata.get_or_insert_with(AtaSmart::default)
    }

    fn nvme(&mut self) -> &mut NvmeHealth {
        self.report.nvme.get_or_insert_with(NvmeHealth::default)
    }

    fn scsi(&mut self) -> &mut ScsiHealth {
        self.report.scsi.get_or_insert_with(ScsiHealth::default)
    }

    fn protocol(&mut self, protocol: Protocol) {
        self.report.device.protocol.get_or_insert(protocol);
    }

    fn enter(&mut self, section: Section) {
        self.section = Some(section);
        self.recognized = true;
    }

    fn line(&mut self, number: usize, line: &str) -> Result<(), SmartParseError> {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            // Tables and the NVMe log end at a blank line.
            if self.section.is_some_and(|s| s != Section::Information) {
                self.section = Some(Section::SmartData);
            }
            return Ok(());
        }
        if self.table_row(number, line)? {
            return Ok(());
        }
        if self.structural(trimmed) || self.problem(trimmed) {
            self.recognized = true;
            return Ok(());
        }
        if let Some((key, value)) = key_value(trimmed)
            && self.field(&key, value)
        {
            self.recognized = true;
        }
        Ok(())
    }

    /// Rows of the tables we model. Returns `Ok(true)` when the line was a row.
    fn table_row(&mut self, number: usize, line: &str) -> Result<bool, SmartParseError> {
        let malformed = |section, expected| SmartParseError::Malformed {
            line: number,
            section,
            expected,
            snippet: snippet(line),
        };
        match self.section {
            Some(Section::AtaAttributes) => {
                if !rows::looks_like_attribute_row(line) {
                    self.section = Some(Section::SmartData);
                    return Ok(false);
                }
                let attribute = rows::attribute_row(line).ok_or_else(|| {
                    malformed(
                        Section::AtaAttributes,
                        "`ID NAME FLAGS VALUE WORST THRESH [TYPE UPDATED] WHEN_FAILED RAW`",
                    )
                })?;
                self.ata().attributes.push(attribute);
                Ok(true)
            }
            Some(Section::AtaSelfTestLog) if line.trim_start().starts_with('#') => {
                let entry = rows::ata_self_test_row(line).ok_or_else(|| {
                    malformed(
                        Section::AtaSelfTestLog,
                        "`# N  DESCRIPTION  STATUS  REMAINING%  LIFETIME  LBA`",
                    )
                })?;
                self.ata().self_tests.push(entry);
                Ok(true)
            }
            Some(Section::ScsiSelfTestLog) if line.trim_start().starts_with('#') => {
                let entry = rows::scsi_self_test_row(line).ok_or_else(|| {
                    malformed(
                        Section::ScsiSelfTestLog,
                        "`# N  DESCRIPTION  STATUS  SEGMENT  LIFETIME  LBA`",
                    )
                })?;
                self.scsi().self_tests.push(entry);
                Ok(true)
            }
            Some(Section::NvmeSelfTestLog)
                if line.trim_start().starts_with(|c: char| c.is_ascii_digit()) =>
            {
                let entry = rows::nvme_self_test_row(line).ok_or_else(|| {
                    malformed(
                        Section::NvmeSelfTestLog,
                        "`N  DESCRIPTION  STATUS  POWER_ON_HOURS  FAILING_LBA …`",
                    )
                })?;
                self.nvme().self_tests.push(entry);
                Ok(true)
            }
            Some(Section::ScsiErrorCounters) => {
                let t = line.trim_start();
                if t.starts_with("read:") || t.starts_with("write:") || t.starts_with("verify:") {
                    let (which, counters) =
                        rows::scsi_error_counter_row(line).ok_or_else(|| {
                            malformed(
                                Section::ScsiErrorCounters,
                                "`read|write|verify:` and 7 numbers",
                            )
                        })?;
                    let scsi = self.scsi();
                    match which {
                        "read" => scsi.read = Some(counters),
                        "write" => scsi.write = Some(counters),
                        _ => scsi.verify = Some(counters),
                    }
                    return Ok(true);
                }
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    /// Banners and section headers. Returns true when the line was one.
    fn structural(&mut self, line: &str) -> bool {
        if let Some(info) = rows::banner(line) {
            self.report.smartctl = Some(info);
            self.section = Some(Section::Preamble);
            return true;
        }
        if line.starts_with("Copyright (C)") && line.contains("Bruce Allen") {
            return true;
        }
        if line.starts_with("=== START OF") {
            let section = if line.contains("INFORMATION") {
                Section::Information
            } else {
                Section::SmartData
            };
            self.enter(section);
            return true;
        }
        let section = if line.starts_with("ID#") && line.contains("ATTRIBUTE_NAME") {
            self.protocol(Protocol::Ata);
            self.ata();
            Section::AtaAttributes
        } else if line.starts_with("SMART Error Log Version")
            || line.starts_with("SMART Extended Comprehensive Error Log Version")
        {
            Section::AtaErrorLog
        } else if line.starts_with("SMART Self-test log structure revision number")
            || line.starts_with("SMART Extended Self-test Log Version")
        {
            Section::AtaSelfTestLog
        } else if line.starts_with("SMART/Health Information (NVMe Log") {
            self.protocol(Protocol::Nvme);
            self.nvme();
            Section::NvmeHealth
        } else if line.starts_with("Error Information (NVMe Log") {
            Section::NvmeErrorLog
        } else if line.starts_with("Self-test Log (NVMe Log") {
            Section::NvmeSelfTestLog
        } else if line.starts_with("Error counter log:") {
            self.protocol(Protocol::Scsi);
            Section::ScsiErrorCounters
        } else if line == "SMART Self-test log" {
            Section::ScsiSelfTestLog
        } else if [
            "General Purpose Log Directory",
            "SMART Log Directory",
            "SMART           Log Directory",
            "SMART Selective self-test log",
            "SCT Status Version",
            "SCT Temperature History",
            "SCT Error Recovery Control",
            "Device Statistics (",
            "SATA Phy Event Counters",
            "Pending Defects log",
            "Supported Power States",
            "Supported LBA Sizes",
            "Vendor (",
        ]
        .iter()
        .any(|p| line.starts_with(p))
        {
            Section::Skipped
        } else if line == "No Errors Logged" {
            if self.section == Some(Section::AtaErrorLog) {
                self.ata().error_log_count = Some(0);
            }
            return true;
        } else {
            return line.starts_with("No self-tests have been logged")
                || line.starts_with("No Self-tests Logged")
                || line.starts_with("No Self-tests have been logged");
        };
        self.enter(section);
        true
    }

    /// Lines that explain why there is no data. Returns true when the line was one.
    fn problem(&mut self, line: &str) -> bool {
        let problems = &mut self.report.problems;
        if let Some(rest) = line.strip_prefix("Smartctl open device:") {
            let (device, reason) = match rest.find(" failed:") {
                Some(at) => (
                    rest[..at].trim().to_owned(),
                    rest[at + " failed:".len()..].trim().to_owned(),
                ),
                None => (String::new(), rest.trim().to_owned()),
            };
            let lower = reason.to_ascii_lowercase();
            let permission_denied = [
                "permission denied",
                "operation not permitted",
                "error=5",
                "access is denied",
            ]
            .iter()
            .any(|p| lower.contains(p));
            problems.push(DeviceProblem::OpenFailed {
                device,
                reason,
                permission_denied,
            });
            return true;
        }
        if let Some(at) = line.find(": Unknown USB bridge") {
            problems.push(DeviceProblem::UnknownUsbBridge {
                device: line[..at].trim().to_owned(),
                bridge: rows::between(&line[at..], '[', ']').unwrap_or_default(),
            });
            return true;
        }
        if let Some((mode, _)) = line
            .strip_prefix("Device is in ")
            .and_then(|rest| rest.split_once(" mode"))
        {
            let mode = mode.trim().to_owned();
            self.report.power_mode = Some(power_mode(&mode));
            self.report.problems.push(DeviceProblem::Standby { mode });
            return true;
        }
        if let Some((device, kind, protocol)) = rows::device_of_type(line) {
            let d = &mut self.report.device;
            d.name.get_or_insert(device);
            d.device_type = Some(kind);
            if let Some(p) = protocol.as_deref().and_then(protocol_word) {
                d.protocol = Some(p);
            }
            return true;
        }
        if line.contains("Device open changed type from") {
            if let Some(kind) = line.rsplit('\'').nth(1) {
                self.report.device.device_type = Some(kind.to_owned());
            }
            return true;
        }
        if line == "ATA device successfully opened" {
            self.protocol(Protocol::Ata);
            return true;
        }
        if line.starts_with("Please specify device type with the -d option")
            || line.starts_with("Use smartctl -h to get a usage summary")
            || line.starts_with("Use 'smartctl -a'")
        {
            return true;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("read smart data failed")
            || lower.starts_with("smart status command failed")
            || lower.starts_with("a mandatory smart command failed")
            || lower.starts_with("read device identity failed")
            || lower.starts_with("smartctl: device read identity failed")
        {
            self.report.problems.push(DeviceProblem::SmartctlError {
                message: line.to_owned(),
            });
            return true;
        }
        if line.starts_with("Warning: ")
            || line.starts_with("CHECK POWER MODE not implemented")
            || line.starts_with("SMART Status not supported")
            || line.starts_with("Drive failure expected")
            || (line.starts_with("- ") && self.section == Some(Section::SmartData))
        {
            self.report.notices.push(line.to_owned());
            return true;
        }
        // Vendor factory log (Seagate): only a fallback for log page 0x15's `Accumulated
        // power on time`, which smartctl's JSON reports as `power_on_time`.
        // smartctl 5.x (SCSI) words SMART support as sentences, not `SMART support is:`.
        match line {
            "Device does not support SMART" => {
                self.report.smart_support.available = Some(false);
                self.report.problems.push(DeviceProblem::SmartUnavailable {
                    detail: "device does not support SMART".to_owned(),
                });
                return true;
            }
            "Device supports SMART and is Enabled" => {
                self.report.smart_support.available = Some(true);
                self.report.smart_support.enabled = Some(true);
                return true;
            }
            "Device supports SMART and is Disabled" => {
                self.report.smart_support.available = Some(true);
                self.report.smart_support.enabled = Some(false);
                self.report.problems.push(DeviceProblem::SmartDisabled);
                return true;
            }
            _ => {}
        }
        if let Some(rest) = line.strip_prefix("number of hours powered up =") {
            let scsi = self.scsi();
            if scsi.power_on_hours.is_none() {
                scsi.power_on_hours = values::leading_u64(rest);
            }
            return true;
        }
        // `Current temperature = 35 C` (newer smartctl's SCSI temperature line).
        if let Some(rest) = line.strip_prefix("Current temperature =") {
            let value = rest.trim();
            let celsius = values::celsius(value)
                .or_else(|| values::leading_u64(value).and_then(|n| i32::try_from(n).ok()));
            self.scsi().current_temperature_c = celsius;
            if celsius.is_none() {
                self.unreadable_number("current temperature", value);
            }
            return true;
        }
        false
    }

    /// `Key: value` fields. Returns true when the key is one we know.
    fn field(&mut self, key: &str, value: &str) -> bool {
        if self.nvme_field(key, value) || self.scsi_field(key, value) {
            return true;
        }
        let d = &mut self.report.device;
        match key {
            "model family" => d.model_family = text_value(value),
            "device model" => {
                d.model = text_value(value);
                self.protocol(Protocol::Ata);
            }
            "model number" => {
                d.model = text_value(value);
                self.protocol(Protocol::Nvme);
            }
            "serial number" => d.serial = text_value(value),
            "lu wwn device id" => d.wwn = Some(value.split_whitespace().collect::<String>()),
            "logical unit id" => {
                d.wwn = Some(value.trim_start_matches("0x").trim().to_owned());
            }
            "firmware version" => d.firmware = text_value(value),
            "revision" => {
                d.firmware = text_value(value);
                self.protocol(Protocol::Scsi);
            }
            "vendor" => {
                d.vendor = text_value(value);
                self.protocol(Protocol::Scsi);
            }
            "product" => {
                d.product = text_value(value);
                self.protocol(Protocol::Scsi);
            }
            "user capacity" => {
                d.capacity_bytes =
                    values::grouped_u64(value.split("bytes").next().unwrap_or_default());
                if d.capacity_bytes.is_none() {
                    self.unreadable_number(key, value);
                }
            }
            "total nvm capacity" => {
                d.capacity_bytes = values::grouped_u64(value);
                if d.capacity_bytes.is_none() {
                    self.unreadable_number(key, value);
                }
            }
            "namespace 1 size/capacity" => {
                if d.capacity_bytes.is_none() {
                    d.capacity_bytes = values::grouped_u64(value);
                }
            }
            "sector size" | "sector sizes" => {
                // `512 bytes logical/physical` or `512 bytes logical, 4096 bytes physical`.
                let mut numbers = value.split(',').filter_map(|part| {
                    values::leading_u64(part).and_then(|n| u32::try_from(n).ok())
                });
                d.logical_block_size = numbers.next();
                d.physical_block_size = numbers.next().or(d.logical_block_size);
            }
            "logical block size" | "namespace 1 formatted lba size" => {
                d.logical_block_size =
                    values::leading_u64(value).and_then(|n| u32::try_from(n).ok());
            }
            "physical block size" => {
                d.physical_block_size =
                    values::leading_u64(value).and_then(|n| u32::try_from(n).ok());
            }
            "rotation rate" => {
                d.rotation = if value.starts_with("Solid State") {
                    Some(Rotation::SolidState)
                } else {
                    values::leading_u64(value)
                        .and_then(|n| u32::try_from(n).ok())
                        .map(Rotation::Rpm)
                };
            }
            "form factor" => d.form_factor = text_value(value),
            "device is" => {
                if value.starts_with("In smartctl database") {
                    d.in_smartctl_database = Some(true);
                } else if value.starts_with("Not in smartctl database") {
                    d.in_smartctl_database = Some(false);
                }
            }
            "ata version is" => d.ata_version = text_value(value),
            "sata version is" => {
                let mut parts = value.splitn(2, ',');
                d.sata_version = parts.next().and_then(text_value);
                let speed = rows::between(value, '(', ')')
                    .and_then(|c| c.strip_prefix("current:").map(|s| s.trim().to_owned()))
                    .or_else(|| parts.next().and_then(text_value));
                d.interface_speed = speed;
            }
            "transport protocol" => d.transport = text_value(value),
            "smart support is" => self.smart_support(value),
            "power mode is" | "power mode was" => {
                self.report.power_mode = Some(power_mode(value));
            }
            "smart overall-health self-assessment test result" => {
                self.report.health = if value.starts_with("PASSED") {
                    OverallHealth::Passed
                } else if value.starts_with("FAILED") {
                    OverallHealth::Failed
                } else {
                    OverallHealth::Unknown
                };
            }
            "smart attributes data structure revision number" => {
                self.ata().attributes_revision =
                    values::leading_u64(value).and_then(|n| u32::try_from(n).ok());
            }
            "self-test execution status" => {
                let code = rows::between(value, '(', ')').and_then(|c| c.trim().parse::<u8>().ok());
                if let Some(code) = code {
                    let description = value.split_once(')').and_then(|(_, d)| text_value(d));
                    self.ata().self_test_execution =
                        Some(SelfTestExecution::from_code(code, description));
                }
            }
            "ata error count" | "device error count" => {
                self.ata().error_log_count = values::leading_u64(value);
            }
            "current temperature" => self.sct_temperature = values::celsius(value),
            _ => return false,
        }
        true
    }

    fn smart_support(&mut self, value: &str) {
        let support = &mut self.report.smart_support;
        if value.starts_with("Available") {
            support.available = Some(true);
        } else if value.starts_with("Unavailable") {
            support.available = Some(false);
            let detail = value
                .split_once(" - ")
                .map_or(value, |(_, d)| d)
                .trim()
                .to_owned();
            self.report
                .problems
                .push(DeviceProblem::SmartUnavailable { detail });
        } else if value.starts_with("Enabled") {
            support.enabled = Some(true);
        } else if value.starts_with("Disabled") {
            support.enabled = Some(false);
            self.report.problems.push(DeviceProblem::SmartDisabled);
        }
    }

    fn nvme_field(&mut self, key: &str, value: &str) -> bool {
        let in_log = self.section == Some(Section::NvmeHealth);
        if !in_log {
            return false;
        }
        let n = self.nvme();
        let counter = values::grouped_u128(value);
        match key {
            "critical warning" => {
                n.critical_warning = values::hex_u64(value)
                    .and_then(|v| u8::try_from(v).ok())
                    .map(CriticalWarning::from_byte);
            }
            "temperature" => n.temperature_c = values::celsius(value),
            "available spare" => n.available_spare_percent = values::percent(value),
            "available spare threshold" => {
                n.available_spare_threshold_percent = values::percent(value);
            }
            "percentage used" => n.percentage_used = values::percent(value),
            "data units read" => n.data_units_read = counter,
            "data units written" => n.data_units_written = counter,
            "host read commands" => n.host_reads = counter,
            "host write commands" => n.host_writes = counter,
            "controller busy time" => n.controller_busy_minutes = counter,
            "power cycles" => n.power_cycles = counter,
            "power on hours" => n.power_on_hours = counter,
            "unsafe shutdowns" => n.unsafe_shutdowns = counter,
            "media and data integrity errors" => n.media_errors = counter,
            "error information log entries" => n.error_log_entries = counter,
            "warning comp. temperature time" => n.warning_temp_minutes = values::grouped_u64(value),
            "critical comp. temperature time" => {
                n.critical_temp_minutes = values::grouped_u64(value);
            }
            k if k.starts_with("temperature sensor") => {
                if let Some(t) = values::celsius(value) {
                    n.temperature_sensors_c.push(t);
                }
            }
            k if k.starts_with("thermal temp.") => {}
            _ => return false,
        }
        let is_counter = matches!(
            key,
            "data units read"
                | "data units written"
                | "host read commands"
                | "host write commands"
                | "controller busy time"
                | "power cycles"
                | "power on hours"
                | "unsafe shutdowns"
                | "media and data integrity errors"
                | "error information log entries"
        );
        if is_counter && counter.is_none() {
            self.unreadable_number(key, value);
        }
        true
    }

    /// A number that is there but could not be read (a grouping or spelling we do not know)
    /// is said, never turned silently into "no value".
    fn unreadable_number(&mut self, key: &str, value: &str) {
        if !value.trim().is_empty() {
            self.report.notices.push(format!(
                "could not read the number in `{key}: {}`",
                value.trim()
            ));
        }
    }

    fn scsi_field(&mut self, key: &str, value: &str) -> bool {
        let number = values::grouped_u64(value);
        match key {
            "self-test status" if self.section == Some(Section::NvmeSelfTestLog) => {
                self.nvme().self_test_status = text_value(value);
            }
            "smart health status" => {
                self.protocol(Protocol::Scsi);
                self.report.health = if value == "OK" {
                    OverallHealth::Passed
                } else {
                    OverallHealth::Failed
                };
                self.scsi().health_status = text_value(value);
            }
            "current drive temperature" => {
                self.scsi().current_temperature_c = values::celsius(value)
            }
            "drive trip temperature" => self.scsi().trip_temperature_c = values::celsius(value),
            "accumulated start-stop cycles" => self.scsi().start_stop_cycles = number,
            "accumulated load-unload cycles" => self.scsi().load_unload_cycles = number,
            "elements in grown defect list" => self.scsi().grown_defects = number,
            "non-medium error count" => self.scsi().non_medium_errors = number,
            "current temperature" if self.report.device.protocol == Some(Protocol::Scsi) => {
                self.scsi().current_temperature_c = values::celsius(value);
            }
            "percentage used endurance indicator" => {
                self.scsi().percentage_used_endurance = values::percent(value);
            }
            // Log page 0x15 (or the background scan log): `Accumulated power on time,
            // hours:minutes 4596:24`, inside the background scan results with a
            // ` [275784 minutes]` suffix (smartmontools scsiprint.cpp), the hours possibly
            // grouped with a no-break space. The key ends at the first `:`.
            "accumulated power on time, hours" => {
                let hours = value
                    .trim()
                    .strip_prefix("minutes")
                    .map(|hm| hm.split('[').next().unwrap_or_default().trim())
                    .and_then(|hm| hm.rsplit_once(':'))
                    .and_then(|(hours, _minutes)| values::grouped_u64(hours));
                if hours.is_none() {
                    self.unreadable_number(key, value);
                }
                self.scsi().power_on_hours = hours;
            }
            _ => return false,
        }
        if matches!(
            key,
            "accumulated start-stop cycles"
                | "accumulated load-unload cycles"
                | "elements in grown defect list"
                | "non-medium error count"
        ) && number.is_none()
        {
            self.unreadable_number(key, value);
        }
        true
    }

    /// Fills the cross-protocol fields once everything has been read.
    fn finish(mut self) -> SmartReport {
        let sct_temperature = self.sct_temperature;
        let r = &mut self.report;
        if r.device.model.is_none() {
            r.device.model = match (&r.device.vendor, &r.device.product) {
                (Some(v), Some(p)) => Some(format!("{v} {p}")),
                (None, Some(p)) => Some(p.clone()),
                _ => None,
            };
        }
        if r.device.protocol.is_none() {
            if r.nvme.is_some() {
                r.device.protocol = Some(Protocol::Nvme);
            } else if r.ata.is_some() {
                r.device.protocol = Some(Protocol::Ata);
            } else if r.scsi.is_some() {
                r.device.protocol = Some(Protocol::Scsi);
            }
        }
        derive_common(r, sct_temperature);
        self.report
    }
}

/// Temperature, power-on hours and power cycles in one place for every protocol, so
/// consumers do not need to know where each dialect keeps them. Shared with the JSON path.
pub(crate) fn derive_common(r: &mut SmartReport, sct_temperature: Option<i32>) {
    if let Some(n) = &r.nvme {
        r.temperature_c = r.temperature_c.or(n.temperature_c);
        r.power_on_hours = r
            .power_on_hours
            .or_else(|| n.power_on_hours.and_then(|h| u64::try_from(h).ok()));
        r.power_cycles = r
            .power_cycles
            .or_else(|| n.power_cycles.and_then(|c| u64::try_from(c).ok()));
    }
    if let Some(s) = &r.scsi {
        // Virtual disks and controller nodes print `0 C`: no sensor, not a cold disk.
        r.temperature_c = r
            .temperature_c
            .or(s.current_temperature_c.filter(|t| *t != 0));
        r.power_on_hours = r.power_on_hours.or(s.power_on_hours);
        r.power_cycles = r.power_cycles.or(s.start_stop_cycles);
    }
    if let Some(a) = &r.ata {
        let plausible = |t: &i32| (1..=150).contains(t);
        let from_attribute = |id: u8| {
            a.attribute(id)
                .and_then(|attr| attr.raw.value)
                .and_then(|v| i32::try_from(v).ok())
                .filter(plausible)
        };
        r.temperature_c = r
            .temperature_c
            .or(sct_temperature.filter(plausible))
            .or_else(|| from_attribute(194))
            .or_else(|| from_attribute(190));
        r.power_on_hours = r.power_on_hours.or_else(|| {
            let attr = a.attribute(9)?;
            let raw = attr.raw.value?;
            let name = attr.name.to_ascii_lowercase();
            Some(if name.contains("half_minutes") {
                raw / 120
            } else if name.contains("minutes") {
                raw / 60
            } else if name.contains("seconds") {
                raw / 3600
            } else {
                raw
            })
        });
        r.power_cycles = r
            .power_cycles
            .or_else(|| a.attribute(12).and_then(|attr| attr.raw.value));
    }
}

fn power_mode(text: &str) -> PowerMode {
    let upper = text.trim().to_ascii_uppercase();
    if upper.starts_with("ACTIVE") {
        PowerMode::ActiveOrIdle
    } else if upper.starts_with("IDLE") {
        PowerMode::Idle
    } else if upper.starts_with("STANDBY") {
        PowerMode::Standby
    } else if upper.starts_with("SLEEP") {
        PowerMode::Sleep
    } else {
        PowerMode::Other(text.trim().to_owned())
    }
}

fn protocol_word(word: &str) -> Option<Protocol> {
    match word {
        "ATA" | "SAT" => Some(Protocol::Ata),
        "NVMe" => Some(Protocol::Nvme),
        "SCSI" => Some(Protocol::Scsi),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smart::model::WhenFailed;

    #[test]
    fn empty_and_foreign_input_are_errors_with_the_line() {
        assert!(matches!(parse_text("  \n\n"), Err(SmartParseError::Empty)));
        match parse_text("\nhello world\nsecond line\n") {
            Err(SmartParseError::NotSmartctl { line, snippet }) => {
                assert_eq!(line, 2);
                assert_eq!(snippet, "hello world");
            }
            other => panic!("expected NotSmartctl, got {other:?}"),
        }
    }

    #[test]
    fn truncated_attribute_row_is_a_precise_error() {
        let text = "ID# ATTRIBUTE_NAME          FLAGS    VALUE WORST THRESH FAIL RAW_VALUE\n  5 Reallocated_Sector_Ct   PO--CK   001\n";
        match parse_text(text) {
            Err(SmartParseError::Malformed { line, section, .. }) => {
                assert_eq!(line, 2);
                assert_eq!(section, Section::AtaAttributes);
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn standby_is_a_report_with_a_problem() {
        let text = "smartctl 7.2 2020-12-30 r5155 [x86_64-linux-5.10.0] (local build)\nCopyright (C) 2002-20, Bruce Allen, Christian Franke, www.smartmontools.org\n\nDevice is in STANDBY mode, exit(2)\n";
        let r = parse_text(text).unwrap();
        assert_eq!(r.power_mode, Some(PowerMode::Standby));
        assert_eq!(
            r.problems,
            vec![DeviceProblem::Standby {
                mode: "STANDBY".into()
            }]
        );
        assert!(!r.has_health_data());
    }

    #[test]
    fn crlf_and_collapsed_lines_read_the_same() {
        let a = "=== START OF READ SMART DATA SECTION ===\r\nSMART overall-health self-assessment test result: FAILED!\r\n\r\nID# ATTRIBUTE_NAME FLAG VALUE WORST THRESH TYPE UPDATED WHEN_FAILED RAW_VALUE\r\n  5 Reallocated_Sector_Ct 0x0033 001 001 005 Pre-fail Always FAILING_NOW 1303\r\n";
        let r = parse_text(a).unwrap();
        assert_eq!(r.health, OverallHealth::Failed);
        let attr = r.ata.as_ref().and_then(|a| a.attribute(5)).unwrap();
        assert_eq!(attr.when_failed, WhenFailed::Now);
        assert_eq!(attr.raw.value, Some(1303));
        assert_eq!(r.device.protocol, Some(Protocol::Ata));
    }
}
