//! What the kernel tests share: who runs them and whether skipping is allowed.

/// The real user id, from `/proc/self/status`.
pub fn uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}

/// `ONEBOX_REQUIRE_BACKENDS=1`: a missing prerequisite fails the test instead of skipping it.
pub fn required() -> bool {
    std::env::var("ONEBOX_REQUIRE_BACKENDS").is_ok_and(|v| v == "1")
}
