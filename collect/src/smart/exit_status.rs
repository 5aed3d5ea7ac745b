//! smartctl's exit status, decoded.
//!
//! smartctl reports health through its exit code as much as through its output: bits 3–7
//! are set even when the text is unremarkable (an attribute check the controller hid, a
//! self-test failure further down the log). The verdict uses both, so the bits get names.

use serde::{Deserialize, Serialize};

/// The eight bits of smartctl's exit status (see `man smartctl`, RETURN VALUES).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The code as returned.
    pub code: i32,
    /// bit 0: command line did not parse.
    pub command_line_error: bool,
    /// bit 1: device open failed, or the device is in a low-power mode (`-n`).
    pub device_open_failed: bool,
    /// bit 2: a SMART or other ATA command failed, or a checksum error in a SMART page.
    pub smart_command_failed: bool,
    /// bit 3: SMART status check returned "DISK FAILING".
    pub disk_failing: bool,
    /// bit 4: prefail attributes are at or below threshold.
    pub prefail_below_threshold: bool,
    /// bit 5: status OK, but usage/prefail attributes were at or below threshold in the past.
    pub past_below_threshold: bool,
    /// bit 6: the device error log contains records of errors.
    pub error_log_has_errors: bool,
    /// bit 7: the self-test log contains records of errors.
    pub self_test_log_has_errors: bool,
}

impl ExitStatus {
    /// Decodes a process exit code. Only the low eight bits carry meaning.
    pub fn from_code(code: i32) -> Self {
        let bit = |n: u32| code & (1 << n) != 0;
        Self {
            code,
            command_line_error: bit(0),
            device_open_failed: bit(1),
            smart_command_failed: bit(2),
            disk_failing: bit(3),
            prefail_below_threshold: bit(4),
            past_below_threshold: bit(5),
            error_log_has_errors: bit(6),
            self_test_log_has_errors: bit(7),
        }
    }

    /// True when no bit is set.
    pub fn is_clean(&self) -> bool {
        self.code & 0xff == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_clean() {
        let s = ExitStatus::from_code(0);
        assert!(s.is_clean());
        assert!(!s.disk_failing);
    }

    #[test]
    fn every_bit_maps_to_its_field() {
        let s = ExitStatus::from_code(0xff);
        assert!(s.command_line_error && s.device_open_failed && s.smart_command_failed);
        assert!(s.disk_failing && s.prefail_below_threshold && s.past_below_threshold);
        assert!(s.error_log_has_errors && s.self_test_log_has_errors);
        assert!(ExitStatus::from_code(64).error_log_has_errors);
        assert!(!ExitStatus::from_code(64).self_test_log_has_errors);
        let two = ExitStatus::from_code(2);
        assert!(two.device_open_failed && !two.command_line_error);
        // 4 + 8 + 16: a failing disk with prefail attributes below threshold.
        let s = ExitStatus::from_code(28);
        assert!(s.smart_command_failed && s.disk_failing && s.prefail_below_threshold);
        assert!(!s.past_below_threshold);
    }
}
