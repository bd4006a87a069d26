//! Who runs `sendmail`: the default envelope sender's local part.

/// The user name of the real UID (from /etc/passwd), else `$LOGNAME`/`$USER`, else
/// `uidN`.
pub fn user_name() -> String {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(str::to_string))
        });
    if let (Some(uid), Ok(passwd)) = (&uid, std::fs::read_to_string("/etc/passwd")) {
        for line in passwd.lines() {
            let mut f = line.split(':');
            if let (Some(name), _, Some(u)) = (f.next(), f.next(), f.next())
                && u == uid
                && usable(name)
            {
                return name.to_string();
            }
        }
    }
    for var in ["LOGNAME", "USER"] {
        if let Ok(v) = std::env::var(var)
            && usable(&v)
        {
            return v;
        }
    }
    uid.map(|u| format!("uid{u}"))
        .unwrap_or_else(|| "nobody".into())
}

/// A name that is safe as a local part as it is.
fn usable(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}
