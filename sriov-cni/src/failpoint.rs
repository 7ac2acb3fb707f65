//! Fault injection between the steps of `ADD` and `DEL`, compiled in only with the
//! `failpoints` feature.
//!
//! `SRIOV_CNI_FAILPOINT=<step>[:<action>][,<step>[:<action>]...]` makes [`hit`] act when the
//! named step is reached:
//!
//! - `error` (default): the step fails, as if the kernel had refused it;
//! - `panic`: the step panics;
//! - `abort`: the process aborts on the spot (no unwinding, no rollback: what `kill -9` does);
//! - `pause`: the process prints `failpoint <step> paused` on stderr and waits to be killed, so
//!   a test can `kill -9` it at exactly this point.
//!
//! Without the feature [`hit`] is an inlined `Ok(())`.

use crate::error::Error;

/// Environment variable naming the failpoints.
pub const ENV: &str = "SRIOV_CNI_FAILPOINT";

/// Every `ADD` step that can be failed, in order.
pub const ADD_STEPS: &[&str] = &[
    "add:journal-written",
    "add:vf-settings",
    "add:vf-settings-applied",
    "add:altnames-dropped",
    "add:moved",
    "add:mac-set",
    "add:mtu-set",
    "add:up",
    "add:ipam",
    "add:addresses",
    "add:device-info",
    "add:complete",
];

/// Every `DEL` step that can be failed.
pub const DEL_STEPS: &[&str] = &["del:locked", "del:undo"];

/// Acts on the failpoint `step` if `SRIOV_CNI_FAILPOINT` names it.
#[cfg(feature = "failpoints")]
pub fn hit(step: &str) -> Result<(), Error> {
    let Ok(spec) = std::env::var(ENV) else { return Ok(()) };
    for entry in spec.split(',') {
        // Step names contain ':' themselves (`add:moved`), so the action is what follows the
        // whole step name.
        let action = match entry.strip_prefix(step) {
            Some("") => "error",
            Some(rest) => match rest.strip_prefix(':') {
                Some(action) => action,
                None => continue,
            },
            None => continue,
        };
        tracing::warn!(step, action, "failpoint triggered");
        match action {
            "panic" => panic!("failpoint {step}"),
            "abort" => std::process::abort(),
            "pause" => {
                eprintln!("failpoint {step} paused");
                loop {
                    std::thread::park();
                }
            }
            _ => return Err(Error::Failpoint(step.to_owned())),
        }
    }
    Ok(())
}

/// Acts on the failpoint `step` (compiled out: always `Ok`).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_step: &str) -> Result<(), Error> {
    Ok(())
}
