//! Unit tests of auth.rs: the token file, identities, revocation, failed-login limits.

use super::*;

fn rw() -> NewToken {
    NewToken::default()
}

fn ro() -> NewToken {
    NewToken {
        read_only: true,
        ..Default::default()
    }
}

#[test]
fn create_list_revoke_verify() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tokens.json");
    let s = TokenStore::open(&p).unwrap();
    assert!(!s.any());
    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (a, sa) = s.create("admin", rw()).unwrap();
    let (r, sr) = s.create("phone", ro()).unwrap();
    assert!(sa.starts_with("fvfs_") && sa.len() == 45, "{sa}");
    assert!(matches!(s.create("admin", ro()), Err(AuthError::Exists(_))));
    assert!(matches!(
        s.create("bad name", ro()),
        Err(AuthError::InvalidName(_))
    ));
    assert_eq!(s.list().unwrap(), vec![a.clone(), r.clone()]);
    assert!(s.any());
    assert_eq!(s.verify(&sa), Some(a.clone()));
    assert!(s.verify(&sr).unwrap().read_only);
    assert_eq!(s.verify("fvfs_nope"), None);
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(!text.contains(&sa[5..]), "the secret must not be stored");
    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(s.revoke(&r.id).unwrap(), r);
    assert_eq!(s.verify(&sr), None);
    assert!(matches!(s.revoke("phone"), Err(AuthError::NoSuchToken(_))));
}

#[test]
fn revocation_seen_by_another_store() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tokens.json");
    let daemon = TokenStore::open(&p).unwrap();
    let cli = TokenStore::open(&p).unwrap();
    let (_, secret) = cli.create("laptop", rw()).unwrap();
    assert_eq!(daemon.verify(&secret).unwrap().name, "laptop");
    cli.revoke("laptop").unwrap();
    assert_eq!(daemon.verify(&secret), None);
}

#[test]
fn corrupt_file_admits_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tokens.json");
    let s = TokenStore::open(&p).unwrap();
    let (_, secret) = s.create("a", rw()).unwrap();
    std::fs::write(&p, "{ not json").unwrap();
    assert_eq!(s.verify(&secret), None);
    assert!(matches!(s.list(), Err(AuthError::Corrupt { .. })));
}

#[test]
fn identities_and_old_entries() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tokens.json");
    // A file written before identities: no uid, gid or admin fields.
    let old = r#"{"tokens": [
        {"id": "aaaaaaaa", "name": "admin", "read_only": false, "created_unix": 1,
         "blake3": "0000000000000000000000000000000000000000000000000000000000000000"},
        {"id": "bbbbbbbb", "name": "phone", "read_only": true, "created_unix": 2,
         "blake3": "1111111111111111111111111111111111111111111111111111111111111111"}]}"#;
    std::fs::write(&p, old).unwrap();
    let s = TokenStore::open(&p).unwrap();
    let l = s.list().unwrap();
    assert_eq!((l[0].admin, l[0].uid, l[0].gid), (true, None, None));
    assert_eq!((l[1].admin, l[1].uid, l[1].gid), (false, None, None));
    let (t, secret) = s
        .create(
            "laptop",
            NewToken {
                read_only: false,
                admin: false,
                identity: Some((1000, 100)),
            },
        )
        .unwrap();
    assert_eq!((t.uid, t.gid, t.admin), (Some(1000), Some(100), false));
    let (a, _) = s
        .create(
            "ops",
            NewToken {
                admin: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(a.admin);
    // A renamed old entry would not be admin: the default follows the name.
    let again = TokenStore::open(&p).unwrap();
    assert_eq!(again.verify(&secret).unwrap(), t);
    let l = again.list().unwrap();
    assert_eq!(
        l.iter()
            .map(|t| (t.name.as_str(), t.admin))
            .collect::<Vec<_>>(),
        vec![
            ("admin", true),
            ("phone", false),
            ("laptop", false),
            ("ops", true)
        ]
    );
}

#[test]
fn failed_login_lines_are_limited_per_peer() {
    let f = FailedLogins::default();
    let t0 = Instant::now();
    let a: IpAddr = "192.0.2.1".parse().unwrap();
    let b: IpAddr = "192.0.2.2".parse().unwrap();
    assert_eq!(f.record(Some(a), t0), Some(0));
    assert_eq!(f.record(Some(a), t0 + Duration::from_secs(1)), None);
    assert_eq!(f.record(Some(a), t0 + Duration::from_secs(59)), None);
    assert_eq!(f.record(Some(b), t0 + Duration::from_secs(2)), Some(0));
    assert_eq!(f.record(Some(a), t0 + Duration::from_secs(61)), Some(2));
    assert_eq!(f.record(Some(a), t0 + Duration::from_secs(62)), None);
    // Past the cap, new peers share one entry.
    for i in 0..FAIL_PEERS as u32 {
        let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        f.record(Some(ip), t0 + Duration::from_secs(62));
    }
    assert!(f.peers.lock().len() <= FAIL_PEERS + 1);
    let c: IpAddr = "198.51.100.1".parse().unwrap();
    assert_eq!(f.record(Some(c), t0 + Duration::from_secs(63)), None);
}
