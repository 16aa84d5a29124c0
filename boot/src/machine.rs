//! What every part of the firmware may use: the console logger, and
//! stopping the machine. It depends on no other module of the firmware
//! (what the power-off report prints is given at boot), so using it
//! closes no import cycle.

use kernel::console::Console;
use log::{error, info};

/// The serial console's logger (OPAL console 0).
pub static CONSOLE: Console = Console::new();

/// What is printed before every power-off (`true`: a clean one).
static POWER_OFF_REPORT: spin::Once<fn(bool)> = spin::Once::new();

/// Sets the power-off report (once, at boot).
pub fn on_power_off(report: fn(bool)) {
    POWER_OFF_REPORT.call_once(|| report);
}

/// Prints the power-off report and the final status line and powers the
/// machine off.
pub fn power_off(ok: bool) -> ! {
    if let Some(report) = POWER_OFF_REPORT.get() {
        report(ok);
    }
    // Printed without a level tag: runners match these exact markers.
    if ok {
        info!(target: "hv", "power off (ok)");
    } else {
        info!(target: "hv", "power off (failure)");
    }
    ppc64::opal::power_down()
}

/// Stops the boot with a message naming what went wrong.
pub fn fatal(args: core::fmt::Arguments<'_>) -> ! {
    error!(target: "hv", "fatal: {args}");
    power_off(false)
}
