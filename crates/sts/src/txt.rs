//! The `_mta-sts.<domain>` TXT record (RFC 8461 §3.1): `v=STSv1; id=20160831085700Z;`.
//!
//! Records that do not start with `v=STSv1` are ignored; more than one that does means
//! no policy is found (§3.1: "senders ... MUST assume that the policy is not available").

/// Why no usable record was found among a name's TXT records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxtError {
    #[error("no TXT record starting with v=STSv1")]
    None,
    #[error("{0} TXT records start with v=STSv1 (exactly one is allowed): no policy")]
    Several(usize),
    #[error("the v=STSv1 record has no id field")]
    NoId,
    #[error("id {0:?} is not 1 to 32 letters and digits")]
    BadId(String),
    #[error("the v=STSv1 record is malformed: {0:?}")]
    Malformed(String),
}

/// The policy id of the one `v=STSv1` record among `records` (each a TXT record's
/// strings joined).
pub fn policy_id(records: &[Vec<u8>]) -> Result<String, TxtError> {
    let ours: Vec<&Vec<u8>> = records
        .iter()
        .filter(|r| r.starts_with(b"v=STSv1"))
        .collect();
    match ours.len() {
        0 => return Err(TxtError::None),
        1 => {}
        n => return Err(TxtError::Several(n)),
    }
    let text = String::from_utf8_lossy(ours[0]);
    let mut fields = text.split(';').map(|f| f.trim_matches([' ', '\t']));
    // The first field is exactly v=STSv1 (not v=STSv10).
    if fields.next() != Some("v=STSv1") {
        return Err(TxtError::Malformed(text.to_string()));
    }
    let mut id = None;
    for f in fields {
        if f.is_empty() {
            continue;
        }
        let Some((k, v)) = f.split_once('=') else {
            return Err(TxtError::Malformed(text.to_string()));
        };
        // The first id counts; extension fields are ignored.
        if k == "id" && id.is_none() {
            id = Some(v);
        }
    }
    let id = id.ok_or(TxtError::NoId)?;
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(TxtError::BadId(id.to_string()));
    }
    Ok(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(r: &[&str]) -> Result<String, TxtError> {
        let v: Vec<Vec<u8>> = r.iter().map(|s| s.as_bytes().to_vec()).collect();
        policy_id(&v)
    }

    #[test]
    fn one_record() {
        assert_eq!(
            ids(&["v=STSv1; id=20160831085700Z;"]).unwrap(),
            "20160831085700Z"
        );
        assert_eq!(ids(&["v=STSv1;id=abc"]).unwrap(), "abc");
        assert_eq!(
            ids(&["v=spf1 -all", "v=STSv1; id=a1; ext=1"]).unwrap(),
            "a1",
            "other records and extensions are ignored"
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(ids(&["v=spf1 -all"]), Err(TxtError::None));
        assert_eq!(
            ids(&["v=STSv1; id=a", "v=STSv1; id=b"]),
            Err(TxtError::Several(2))
        );
        assert_eq!(ids(&["v=STSv1;"]), Err(TxtError::NoId));
        assert_eq!(
            ids(&["v=STSv1; id=has-dash"]),
            Err(TxtError::BadId("has-dash".into()))
        );
        assert_eq!(
            ids(&[&format!("v=STSv1; id={}", "a".repeat(33))]),
            Err(TxtError::BadId("a".repeat(33)))
        );
        assert_eq!(ids(&["v=STSv1; id="]), Err(TxtError::BadId(String::new())));
        assert!(matches!(
            ids(&["v=STSv10; id=a"]),
            Err(TxtError::Malformed(_))
        ));
    }
}
