//! Parser for `smartctl --json` output.
//!
//! The JSON is decoded into private structs that mirror the parts of smartctl's schema we
//! use (every field optional: `-H`, `-A`, `-i` and trimmed captures each carry a different
//! subset), then mapped onto the same [`SmartReport`] the text parser produces. Keeping the
//! mirror private means smartctl's naming changes — 7.3 moved SCSI identity to
//! `scsi_vendor`/`scsi_model_name` — stay in this file.

use serde::Deserialize;

use crate::smart::error::SmartParseError;
use crate::smart::exit_status::ExitStatus;
use crate::smart::model::{
    AtaAttribute, AtaSmart, AttributeFlags, AttributeKind, AttributeUpdated, CriticalWarning,
    DeviceProblem, NvmeHealth, OverallHealth, Protocol, RawValue, Rotation, ScsiErrorCounters,
    ScsiHealth, SelfTestEntry, SelfTestExecution, SelfTestOutcome, SmartReport, SmartctlInfo,
    WhenFailed,
};
use crate::smart::scan::ScanEntry;
use crate::smart::values;

#[derive(Deserialize, Default)]
#[serde(default)]
struct Root {
    json_format_version: Option<Vec<u32>>,
    smartctl: Option<Smartctl>,
    device: Option<Device>,
    devices: Option<Vec<Device>>,
    model_family: Option<String>,
    model_name: Option<String>,
    scsi_model_name: Option<String>,
    vendor: Option<String>,
    scsi_vendor: Option<String>,
    product: Option<String>,
    scsi_product: Option<String>,
    revision: Option<String>,
    scsi_revision: Option<String>,
    serial_number: Option<String>,
    wwn: Option<Wwn>,
    logical_unit_id: Option<String>,
    firmware_version: Option<String>,
    user_capacity: Option<Capacity>,
    nvme_total_capacity: Option<u64>,
    logical_block_size: Option<u32>,
    physical_block_size: Option<u32>,
    rotation_rate: Option<u32>,
    form_factor: Option<Named>,
    ata_version: Option<Stringy>,
    sata_version: Option<Stringy>,
    interface_speed: Option<InterfaceSpeed>,
    scsi_transport_protocol: Option<Named>,
    in_smartctl_database: Option<bool>,
    smart_support: Option<Support>,
    smart_status: Option<Status>,
    temperature: Option<Temperature>,
    power_on_time: Option<PowerOnTime>,
    power_cycle_count: Option<u64>,
    ata_smart_attributes: Option<AtaAttributes>,
    ata_smart_data: Option<AtaSmartData>,
    ata_smart_error_log: Option<AtaErrorLog>,
    ata_smart_self_test_log: Option<AtaSelfTestLog>,
    nvme_smart_health_information_log: Option<NvmeLog>,
    nvme_self_test_log: Option<NvmeSelfTestLog>,
    scsi_grown_defect_list: Option<u64>,
    scsi_error_counter_log: Option<ScsiErrorLog>,
    scsi_start_stop_cycle_counter: Option<ScsiStartStop>,
    scsi_percentage_used_endurance_indicator: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Smartctl {
    version: Option<Vec<u32>>,
    svn_revision: Option<String>,
    platform_info: Option<String>,
    build_info: Option<String>,
    messages: Vec<Message>,
    exit_status: Option<i32>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Message {
    string: String,
    severity: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Device {
    name: Option<String>,
    info_name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    protocol: Option<String>,
    open_error: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Wwn {
    naa: u64,
    oui: u64,
    id: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Capacity {
    bytes: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Named {
    name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Stringy {
    string: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InterfaceSpeed {
    current: Option<Stringy>,
    max: Option<Stringy>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Support {
    available: Option<bool>,
    enabled: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Status {
    passed: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Temperature {
    current: Option<i32>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PowerOnTime {
    hours: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AtaAttributes {
    revision: Option<u32>,
    table: Vec<JsonAttribute>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JsonAttribute {
    id: u8,
    name: String,
    value: Option<u16>,
    worst: Option<u16>,
    thresh: Option<u16>,
    when_failed: String,
    flags: JsonFlags,
    raw: JsonRaw,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JsonFlags {
    value: Option<u16>,
    string: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JsonRaw {
    value: Option<u64>,
    string: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AtaSmartData {
    self_test: Option<AtaSelfTest>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AtaSelfTest {
    status: Option<CodeString>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CodeString {
    value: Option<u8>,
    string: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AtaErrorLog {
    summary: Option<Count>,
    extended: Option<Count>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Count {
    count: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AtaSelfTestLog {
    standard: Option<AtaSelfTestTable>,
    extended: Option<AtaSelfTestTable>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AtaSelfTestTable {
    table: Vec<AtaSelfTestRow>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AtaSelfTestRow {
    #[serde(rename = "type")]
    kind: Stringy,
    status: AtaSelfTestRowStatus,
    lifetime_hours: Option<u64>,
    lba: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AtaSelfTestRowStatus {
    string: String,
    remaining_percent: Option<u8>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NvmeLog {
    critical_warning: Option<u8>,
    temperature: Option<i32>,
    available_spare: Option<u32>,
    available_spare_threshold: Option<u32>,
    percentage_used: Option<u32>,
    data_units_read: Option<u128>,
    data_units_written: Option<u128>,
    host_reads: Option<u128>,
    host_writes: Option<u128>,
    controller_busy_time: Option<u128>,
    power_cycles: Option<u128>,
    power_on_hours: Option<u128>,
    unsafe_shutdowns: Option<u128>,
    media_errors: Option<u128>,
    num_err_log_entries: Option<u128>,
    warning_temp_time: Option<u64>,
    critical_comp_time: Option<u64>,
    temperature_sensors: Vec<i32>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NvmeSelfTestLog {
    current_self_test_operation: Option<Stringy>,
    table: Vec<NvmeSelfTestRow>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NvmeSelfTestRow {
    self_test_code: Stringy,
    self_test_result: Stringy,
    power_on_hours: Option<u64>,
    lba: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ScsiErrorLog {
    read: Option<ScsiCounterRow>,
    write: Option<ScsiCounterRow>,
    verify: Option<ScsiCounterRow>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ScsiCounterRow {
    total_errors_corrected: Option<u64>,
    total_uncorrected_errors: Option<u64>,
    /// A string (`"48.639"`) in every release we have seen; kept loose in case a build
    /// prints a number.
    gigabytes_processed: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ScsiStartStop {
    accumulated_start_stop_cycles: Option<u64>,
    accumulated_load_unload_cycles: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ScsiSelfTest {
    code: Stringy,
    result: Stringy,
    power_on_time: Option<PowerOnTime>,
    lba_first_failure: Option<CodeU64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CodeU64 {
    value: Option<u64>,
}

fn decode(input: &str) -> Result<Root, SmartParseError> {
    if input.trim().is_empty() {
        return Err(SmartParseError::Empty);
    }
    serde_json::from_str(input).map_err(|source| SmartParseError::Json {
        line: source.line(),
        column: source.column(),
        source,
    })
}

/// Parses `smartctl -j …` output. Returns the report and, when the JSON carries it,
/// smartctl's exit status (the verdict needs both).
pub fn parse_json(input: &str) -> Result<(SmartReport, Option<ExitStatus>), SmartParseError> {
    let root = decode(input)?;
    if root.json_format_version.is_none()
        && root.smartctl.is_none()
        && root.device.is_none()
        && root.smart_status.is_none()
        && root.ata_smart_attributes.is_none()
        && root.nvme_smart_health_information_log.is_none()
    {
        return Err(SmartParseError::NotSmartctlJson {
            reason: "none of `json_format_version`, `smartctl`, `device`, `smart_status`, \
                     `ata_smart_attributes`, `nvme_smart_health_information_log` is present",
        });
    }
    if root.devices.is_some() && root.device.is_none() {
        return Err(SmartParseError::NotSmartctlJson {
            reason: "this is a `--scan` result (a `devices` array); read it with parse_scan_json",
        });
    }
    let scsi_self_tests = scsi_self_tests(input);
    let mut report = SmartReport::default();
    let exit = root
        .smartctl
        .as_ref()
        .and_then(|s| s.exit_status)
        .map(ExitStatus::from_code);
    if let Some(s) = &root.smartctl {
        map_smartctl(s, &mut report);
    }
    map_identity(&root, &mut report);
    report.smart_support.available = root.smart_support.as_ref().and_then(|s| s.available);
    report.smart_support.enabled = root.smart_support.as_ref().and_then(|s| s.enabled);
    if report.smart_support.available == Some(false) {
        report.problems.push(DeviceProblem::SmartUnavailable {
            detail: "device lacks SMART capability".into(),
        });
    }
    if report.smart_support.enabled == Some(false) {
        report.problems.push(DeviceProblem::SmartDisabled);
    }
    report.health = match root.smart_status.as_ref().and_then(|s| s.passed) {
        Some(true) => OverallHealth::Passed,
        Some(false) => OverallHealth::Failed,
        None => OverallHealth::Unknown,
    };
    map_ata(&root, &mut report);
    map_nvme(&root, &mut report);
    map_scsi(&root, scsi_self_tests, &mut report);

    let current = root.temperature.as_ref().and_then(|t| t.current);
    report.temperature_c = match report.device.protocol {
        // Virtual disks report 0 °C: no sensor (same rule as the text parser).
        Some(Protocol::Scsi) => current.filter(|t| *t != 0),
        _ => current,
    };
    report.power_on_hours = root.power_on_time.as_ref().and_then(|p| p.hours);
    report.power_cycles = root.power_cycle_count;
    crate::smart::text::derive_common(&mut report, None);
    Ok((report, exit))
}

fn map_smartctl(s: &Smartctl, report: &mut SmartReport) {
    if let Some(version) = &s.version {
        report.smartctl = Some(SmartctlInfo {
            version: version
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("."),
            revision: s.svn_revision.clone(),
            platform: s.platform_info.clone(),
            build: s.build_info.clone(),
        });
    }
    for m in &s.messages {
        let text = m.string.trim();
        if m.severity.as_deref() == Some("error") {
            report.problems.push(problem_from_message(text));
        } else if !text.is_empty() {
            report.notices.push(text.to_owned());
        }
    }
}

/// Classifies an error message the same way the text parser classifies the line.
fn problem_from_message(text: &str) -> DeviceProblem {
    if let Some(rest) = text.strip_prefix("Smartctl open device:") {
        let (device, reason) = rest
            .split_once(" failed:")
            .map_or(("", rest), |(d, r)| (d, r));
        let lower = reason.to_ascii_lowercase();
        let permission_denied = [
            "permission denied",
            "operation not permitted",
            "error=5",
            "access is denied",
        ]
        .iter()
        .any(|p| lower.contains(p));
        return DeviceProblem::OpenFailed {
            device: device.trim().to_owned(),
            reason: reason.trim().to_owned(),
            permission_denied,
        };
    }
    if let Some((device, bridge)) = text.split_once(": Unknown USB bridge") {
        return DeviceProblem::UnknownUsbBridge {
            device: device.trim().to_owned(),
            bridge: bridge
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        };
    }
    if let Some((mode, _)) = text
        .strip_prefix("Device is in ")
        .and_then(|rest| rest.split_once(" mode"))
    {
        return DeviceProblem::Standby {
            mode: mode.trim().to_owned(),
        };
    }
    DeviceProblem::SmartctlError {
        message: text.to_owned(),
    }
}

fn map_identity(root: &Root, report: &mut SmartReport) {
    let d = &mut report.device;
    if let Some(dev) = &root.device {
        d.name = dev.name.clone().or_else(|| dev.info_name.clone());
        d.device_type = dev.kind.clone();
        d.protocol = match dev.protocol.as_deref() {
            Some("ATA") => Some(Protocol::Ata),
            Some("NVMe") => Some(Protocol::Nvme),
            Some("SCSI") => Some(Protocol::Scsi),
            _ => None,
        };
        if let Some(e) = &dev.open_error {
            report.problems.push(problem_from_message(e));
        }
    }
    let d = &mut report.device;
    d.model_family = root.model_family.clone();
    d.vendor = root.scsi_vendor.clone().or_else(|| root.vendor.clone());
    d.product = root.scsi_product.clone().or_else(|| root.product.clone());
    d.model = root
        .model_name
        .clone()
        .or_else(|| root.scsi_model_name.clone())
        .or_else(|| match (&d.vendor, &d.product) {
            (Some(v), Some(p)) => Some(format!("{v} {p}")),
            _ => None,
        });
    d.serial = root.serial_number.clone();
    d.wwn = root
        .wwn
        .as_ref()
        .map(|w| format!("{:x}{:06x}{:09x}", w.naa, w.oui, w.id))
        .or_else(|| {
            root.logical_unit_id
                .as_ref()
                .map(|l| l.trim_start_matches("0x").to_owned())
        });
    d.firmware = root
        .firmware_version
        .clone()
        .or_else(|| root.scsi_revision.clone())
        .or_else(|| root.revision.clone());
    d.capacity_bytes = root
        .nvme_total_capacity
        .or_else(|| root.user_capacity.as_ref().and_then(|c| c.bytes));
    d.logical_block_size = root.logical_block_size;
    d.physical_block_size = root.physical_block_size;
    d.rotation = root.rotation_rate.map(|r| match r {
        0 | 1 => Rotation::SolidState,
        rpm => Rotation::Rpm(rpm),
    });
    d.form_factor = root.form_factor.as_ref().and_then(|f| f.name.clone());
    d.ata_version = root.ata_version.as_ref().and_then(|v| v.string.clone());
    d.sata_version = root.sata_version.as_ref().and_then(|v| v.string.clone());
    d.interface_speed = root.interface_speed.as_ref().and_then(|s| {
        s.current
            .as_ref()
            .or(s.max.as_ref())
            .and_then(|c| c.string.clone())
    });
    d.transport = root
        .scsi_transport_protocol
        .as_ref()
        .and_then(|t| t.name.clone());
    d.in_smartctl_database = root.in_smartctl_database;
    if d.protocol.is_none() {
        d.protocol = if root.nvme_smart_health_information_log.is_some() {
            Some(Protocol::Nvme)
        } else if root.ata_smart_attributes.is_some() {
            Some(Protocol::Ata)
        } else if root.scsi_error_counter_log.is_some() || d.vendor.is_some() {
            Some(Protocol::Scsi)
        } else {
            None
        };
    }
}

fn map_attribute(a: &JsonAttribute) -> AtaAttribute {
    let letters = a.flags.string.trim();
    let flags = match a.flags.value {
        Some(word) => AttributeFlags::from_word(letters, word),
        None => AttributeFlags::from_letters(letters),
    };
    let raw_string = a.raw.string.trim().to_owned();
    AtaAttribute {
        id: a.id,
        name: a.name.clone(),
        kind: if flags.prefailure {
            AttributeKind::PreFail
        } else {
            AttributeKind::OldAge
        },
        updated: if flags.updated_online {
            AttributeUpdated::Always
        } else {
            AttributeUpdated::Offline
        },
        flags,
        value: a.value,
        worst: a.worst,
        thresh: a.thresh,
        when_failed: match a.when_failed.as_str() {
            "now" => WhenFailed::Now,
            "past" => WhenFailed::InThePast,
            _ => WhenFailed::Never,
        },
        raw: RawValue {
            value: values::raw_value(&raw_string).or(a.raw.value),
            string: raw_string,
            packed: a.raw.value,
        },
    }
}

fn map_ata(root: &Root, report: &mut SmartReport) {
    let has_ata = root.ata_smart_attributes.is_some()
        || root.ata_smart_data.is_some()
        || root.ata_smart_error_log.is_some()
        || root.ata_smart_self_test_log.is_some();
    if !has_ata {
        return;
    }
    let mut ata = AtaSmart::default();
    if let Some(attrs) = &root.ata_smart_attributes {
        ata.attributes_revision = attrs.revision;
        ata.attributes = attrs.table.iter().map(map_attribute).collect();
    }
    ata.self_test_execution = root
        .ata_smart_data
        .as_ref()
        .and_then(|d| d.self_test.as_ref())
        .and_then(|t| t.status.as_ref())
        .and_then(|s| {
            s.value
                .map(|code| SelfTestExecution::from_code(code, s.string.clone()))
        });
    ata.error_log_count = root.ata_smart_error_log.as_ref().and_then(|l| {
        l.extended
            .as_ref()
            .and_then(|c| c.count)
            .or_else(|| l.summary.as_ref().and_then(|c| c.count))
    });
    if let Some(log) = &root.ata_smart_self_test_log {
        let table = log
            .extended
            .as_ref()
            .filter(|t| !t.table.is_empty())
            .or(log.standard.as_ref());
        if let Some(table) = table {
            ata.self_tests = table
                .table
                .iter()
                .zip(1u32..)
                .map(|(row, num)| SelfTestEntry {
                    num,
                    description: row.kind.string.clone().unwrap_or_default(),
                    outcome: SelfTestOutcome::classify(&row.status.string),
                    status: row.status.string.clone(),
                    remaining_percent: row.status.remaining_percent,
                    lifetime_hours: row.lifetime_hours,
                    failing_lba: row.lba,
                })
                .collect();
        }
    }
    report.ata = Some(ata);
}

fn map_nvme(root: &Root, report: &mut SmartReport) {
    let Some(log) = &root.nvme_smart_health_information_log else {
        return;
    };
    let mut n = NvmeHealth {
        critical_warning: log.critical_warning.map(CriticalWarning::from_byte),
        temperature_c: log.temperature,
        available_spare_percent: log.available_spare,
        available_spare_threshold_percent: log.available_spare_threshold,
        percentage_used: log.percentage_used,
        data_units_read: log.data_units_read,
        data_units_written: log.data_units_written,
        host_reads: log.host_reads,
        host_writes: log.host_writes,
        controller_busy_minutes: log.controller_busy_time,
        power_cycles: log.power_cycles,
        power_on_hours: log.power_on_hours,
        unsafe_shutdowns: log.unsafe_shutdowns,
        media_errors: log.media_errors,
        error_log_entries: log.num_err_log_entries,
        warning_temp_minutes: log.warning_temp_time,
        critical_temp_minutes: log.critical_comp_time,
        temperature_sensors_c: log.temperature_sensors.clone(),
        self_test_status: None,
        self_tests: Vec::new(),
    };
    if let Some(st) = &root.nvme_self_test_log {
        n.self_test_status = st
            .current_self_test_operation
            .as_ref()
            .and_then(|o| o.string.clone());
        n.self_tests = st
            .table
            .iter()
            .zip(0u32..)
            .map(|(row, num)| {
                let status = row.self_test_result.string.clone().unwrap_or_default();
                SelfTestEntry {
                    num,
                    description: row.self_test_code.string.clone().unwrap_or_default(),
                    outcome: SelfTestOutcome::classify(&status),
                    status,
                    remaining_percent: None,
                    lifetime_hours: row.power_on_hours,
                    failing_lba: row.lba,
                }
            })
            .collect();
    }
    report.nvme = Some(n);
}

fn counters(row: &ScsiCounterRow) -> ScsiErrorCounters {
    ScsiErrorCounters {
        total_corrected: row.total_errors_corrected,
        total_uncorrected: row.total_uncorrected_errors,
        gigabytes_processed: row.gigabytes_processed.as_ref().map(|g| match g {
            serde_json::Value::String(s) => s.replace(',', "."),
            other => other.to_string(),
        }),
    }
}

fn map_scsi(root: &Root, self_tests: Vec<SelfTestEntry>, report: &mut SmartReport) {
    let is_scsi = report.device.protocol == Some(Protocol::Scsi)
        || root.scsi_error_counter_log.is_some()
        || root.scsi_grown_defect_list.is_some();
    if !is_scsi {
        return;
    }
    let log = root.scsi_error_counter_log.as_ref();
    report.scsi = Some(ScsiHealth {
        health_status: root.smart_status.as_ref().and_then(|s| s.passed).map(|p| {
            if p {
                "OK".to_owned()
            } else {
                "FAILED".to_owned()
            }
        }),
        grown_defects: root.scsi_grown_defect_list,
        read: log.and_then(|l| l.read.as_ref()).map(counters),
        write: log.and_then(|l| l.write.as_ref()).map(counters),
        verify: log.and_then(|l| l.verify.as_ref()).map(counters),
        non_medium_errors: None,
        current_temperature_c: root.temperature.as_ref().and_then(|t| t.current),
        trip_temperature_c: None,
        start_stop_cycles: root
            .scsi_start_stop_cycle_counter
            .as_ref()
            .and_then(|c| c.accumulated_start_stop_cycles),
        load_unload_cycles: root
            .scsi_start_stop_cycle_counter
            .as_ref()
            .and_then(|c| c.accumulated_load_unload_cycles),
        power_on_hours: root.power_on_time.as_ref().and_then(|p| p.hours),
        percentage_used_endurance: root.scsi_percentage_used_endurance_indicator,
        self_tests,
    });
    if report.power_cycles.is_none() {
        report.power_cycles = report.scsi.as_ref().and_then(|s| s.start_stop_cycles);
    }
}

/// smartctl names SCSI self-test results `scsi_self_test_0` … `scsi_self_test_19` rather
/// than using an array, so they are collected from the generic value.
fn scsi_self_tests(input: &str) -> Vec<SelfTestEntry> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(input)
    else {
        return Vec::new();
    };
    let mut entries: Vec<SelfTestEntry> = map
        .iter()
        .filter_map(|(key, value)| {
            let num: u32 = key.strip_prefix("scsi_self_test_")?.parse().ok()?;
            let row: ScsiSelfTest = serde_json::from_value(value.clone()).ok()?;
            let status = row.result.string.unwrap_or_default();
            Some(SelfTestEntry {
                num: num + 1,
                description: row.code.string.unwrap_or_default(),
                outcome: SelfTestOutcome::classify(&status),
                status,
                remaining_percent: None,
                lifetime_hours: row.power_on_time.and_then(|p| p.hours),
                failing_lba: row.lba_first_failure.and_then(|l| l.value),
            })
        })
        .collect();
    entries.sort_by_key(|e| e.num);
    entries
}

/// Parses `smartctl --scan -j` / `--scan-open -j`.
pub fn parse_scan_json(input: &str) -> Result<Vec<ScanEntry>, SmartParseError> {
    let root = decode(input)?;
    let Some(devices) = root.devices else {
        return Err(SmartParseError::NotSmartctlJson {
            reason: "a scan result needs a `devices` array",
        });
    };
    Ok(devices
        .into_iter()
        .filter_map(|d| {
            let name = d.name?;
            Some(ScanEntry {
                device: name,
                device_type: d.kind,
                comment: d.info_name,
                open_error: d.open_error,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_smartctl_json_is_rejected_with_reason() {
        assert!(matches!(
            parse_json(r#"{"hello": 1}"#),
            Err(SmartParseError::NotSmartctlJson { .. })
        ));
        match parse_json("{\n  \"smartctl\": [") {
            Err(SmartParseError::Json { line, .. }) => assert_eq!(line, 2),
            other => panic!("expected Json error, got {other:?}"),
        }
        assert!(matches!(
            parse_json("[1,2]"),
            Err(SmartParseError::Json { .. })
        ));
    }

    #[test]
    fn huge_nvme_counters_fit() {
        let json = r#"{"device":{"protocol":"NVMe"},"nvme_smart_health_information_log":{"media_errors":340282366920938463463374607431768211455,"critical_warning":4}}"#;
        let (r, exit) = parse_json(json).unwrap();
        assert_eq!(exit, None);
        let n = r.nvme.unwrap();
        assert_eq!(n.media_errors, Some(u128::MAX));
        assert!(n.critical_warning.unwrap().reliability_degraded);
    }

    #[test]
    fn error_messages_become_problems() {
        let json = r#"{"smartctl":{"version":[7,2],"messages":[{"string":"Device is in STANDBY mode, exit(2)","severity":"error"}],"exit_status":2}}"#;
        let (r, exit) = parse_json(json).unwrap();
        assert!(exit.unwrap().device_open_failed);
        assert_eq!(
            r.problems,
            vec![DeviceProblem::Standby {
                mode: "STANDBY".into()
            }]
        );
    }
}
