//! Unit tests of the origin spec syntax: every kind from both forms, the canonical
//! display round trip, and the exact error of each kind of mistake.

use super::*;

fn err(line: &str) -> String {
    match OriginSpec::parse(line) {
        Ok(s) => panic!("{line} parsed as {s:?}"),
        Err(e) => e.to_string(),
    }
}

fn ferr(fields: &[(&str, &str)]) -> String {
    match OriginSpec::from_fields(fields.iter().copied()) {
        Ok(s) => panic!("{fields:?} parsed as {s:?}"),
        Err(e) => e.to_string(),
    }
}

fn round_trip(s: &OriginSpec) {
    let shown = s.display();
    assert_eq!(&OriginSpec::parse(&shown).expect(&shown), s, "{shown}");
}

#[test]
fn fs_forms_and_defaults() {
    let a = OriginSpec::parse("nas=/mnt/nas/music").unwrap();
    assert_eq!(
        a,
        OriginSpec {
            id: "nas".into(),
            location: OriginLocation::Fs {
                root: "/mnt/nas/music".into()
            },
            priority: DEFAULT_PRIORITY,
            check_interval: Duration::from_secs(30),
        }
    );
    let b = OriginSpec::from_fields([("id", "nas"), ("type", "local"), ("path", "/mnt/nas/music")])
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(
        a.display(),
        "nas=file:///mnt/nas/music?priority=100&check_interval=30s"
    );
    round_trip(&a);
    let odd =
        OriginSpec::parse("x=file:///mnt/My%20Music?priority=1&check_interval=500ms").unwrap();
    assert_eq!(
        odd.location,
        OriginLocation::Fs {
            root: "/mnt/My Music".into()
        }
    );
    assert_eq!(
        (odd.priority, odd.check_interval),
        (1, Duration::from_millis(500))
    );
    round_trip(&odd);
}

#[test]
fn s3_from_a_table_with_keys() {
    let s = OriginSpec::from_fields([
        ("id", "backup"),
        ("kind", "s3"),
        ("bucket", "music-backup"),
        ("prefix", "/flac/"),
        ("endpoint", "http://127.0.0.1:9000/"),
        ("access_key_id", "AKIA1"),
        ("secret_access_key", "very-secret"),
        ("priority", "2"),
        ("check_interval", "2m"),
    ])
    .unwrap();
    let OriginLocation::S3 {
        bucket,
        prefix,
        endpoint,
        region,
        path_style,
        keys,
    } = &s.location
    else {
        panic!("{s:?}")
    };
    assert_eq!((bucket.as_str(), prefix.as_str()), ("music-backup", "flac"));
    assert_eq!(endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!((region.as_str(), *path_style), (DEFAULT_REGION, true));
    assert_eq!(keys.as_ref().unwrap().secret_access_key.0, "very-secret");
    assert_eq!(s.check_interval, Duration::from_secs(120));
    let shown = s.display();
    assert_eq!(
        shown,
        "backup=s3://music-backup/flac?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=us-east-1&path_style=true&priority=2&check_interval=120s"
    );
    assert!(!format!("{s:?}").contains("very-secret"));
    // The display drops the keys (they come from the config or the environment).
    let back = OriginSpec::parse(&shown).unwrap();
    assert!(matches!(
        back.location,
        OriginLocation::S3 { keys: None, .. }
    ));
}

#[test]
fn sftp_and_webdav_lines() {
    let s = OriginSpec::parse(
        "box=sftp://music@nas.local:2222/srv/music?key_file=/root/.ssh/id_ed25519&known_hosts=accept",
    )
    .unwrap();
    assert_eq!(
        s.location,
        OriginLocation::Sftp {
            host: "nas.local".into(),
            port: 2222,
            user: Some("music".into()),
            key_file: Some("/root/.ssh/id_ed25519".into()),
            root: "/srv/music".into(),
            known_hosts: KnownHosts::Accept,
        }
    );
    round_trip(&s);
    let d = OriginSpec::parse("dav=webdavs://me@nas:8443/dav/Music%20Library?password_env=DAV_PW")
        .unwrap();
    assert_eq!(
        d.location,
        OriginLocation::WebDav {
            endpoint: "https://nas:8443".into(),
            root: "/dav/Music Library".into(),
            user: Some("me".into()),
            password: None,
            password_env: Some("DAV_PW".into()),
        }
    );
    round_trip(&d);
    let plain = OriginSpec::parse("d2=webdav://nas").unwrap();
    assert!(
        matches!(&plain.location, OriginLocation::WebDav { endpoint, root, .. } if endpoint == "http://nas" && root == "/")
    );
    round_trip(&plain);
}

#[test]
fn spec_errors_say_what_is_wrong() {
    assert_eq!(
        err("x=ftp://host/music"),
        "invalid origin spec: origin \"x\" has an unknown kind \"ftp\" (known: /path, file://, s3://, sftp://, webdav://, webdavs://)"
    );
    assert_eq!(
        ferr(&[("id", "x"), ("kind", "gopher")]),
        "invalid origin spec: origin \"x\" has an unknown kind \"gopher\" (known: fs, s3, sftp, webdav)"
    );
    assert_eq!(
        err("My Music=/mnt/m"),
        "invalid origin spec: origin id \"My Music\" must be 1 to 32 of a-z, 0-9, _ and -, starting with a letter or digit"
    );
    for bad in ["-x", "aB", "a b", "a.b", "", &"a".repeat(33)] {
        assert!(
            err(&format!("{bad}=/m")).contains(&format!("origin id {bad:?} must be")),
            "{bad}"
        );
    }
    for good in ["a", "nas_2", "0-backup", &"a".repeat(32)] {
        assert_eq!(OriginSpec::parse(&format!("{good}=/m")).unwrap().id, good);
    }
    assert_eq!(
        ferr(&[("id", "b"), ("kind", "s3")]),
        "invalid origin spec: origin \"b\": a s3 origin needs the field \"bucket\""
    );
    assert_eq!(
        ferr(&[("id", "b"), ("kind", "fs"), ("path", "/m"), ("bucket", "x")]),
        "invalid origin spec: origin \"b\": unknown field \"bucket\" for a fs origin (known: id, kind, priority, check_interval, path)"
    );
    assert!(err("x=sftp://h/srv?port=0").contains("port \"0\" is not a TCP port"));
    assert!(err("x=sftp://h").ends_with("a sftp origin needs the field \"root\""));
    assert!(err("x=music").contains("location \"music\" is neither an absolute path nor a URL"));
    assert!(err("nothing").contains("ID=LOCATION"));
    assert!(err("x=s3://b?secret_access_key=zzz").contains("not accepted in a location string"));
    assert!(!err("x=webdav://u:pw@h/x").contains("pw@"));
    assert!(err("x=file://host/m").contains("three slashes"));
    assert!(err("x=s3://b?check_interval=0s").contains("not a duration"));
    assert!(err("x=s3://b?priority=high").contains("not a whole number"));
    assert!(err("x=s3://b?endpoint=ftp://e").contains("http://host[:port]"));
    assert!(ferr(&[
        ("id", "w"),
        ("kind", "webdav"),
        ("url", "http://h/"),
        ("password", "p")
    ])
    .contains("needs a user"));
    assert!(ferr(&[
        ("id", "s"),
        ("kind", "s3"),
        ("bucket", "b"),
        ("access_key_id", "a")
    ])
    .contains("go together"));
    assert!(ferr(&[("id", "s"), ("id", "t")]).contains("given twice"));
    assert!(ferr(&[("id", "s")]).contains("has no kind"));
}

#[test]
fn durations() {
    assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
    assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
    assert_eq!(parse_duration("0"), None);
    assert_eq!(parse_duration("5 weeks"), None);
    assert_eq!(parse_duration(""), None);
}
