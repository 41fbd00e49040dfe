//! `auth_basic` and `auth_basic_user_file`: the hash formats `htpasswd`
//! writes, 401 with `WWW-Authenticate`, 403 before 401, `off` inside,
//! proxied locations, the user in the access log (never the password),
//! the file reloaded when saved, and its problems reported at check time
//! with their place and without printing a hash.

use crate::server::Server;
use crate::support::{assert_contains_all, xps};
use crate::upstream::{self, ok};
use std::time::{Duration, Instant};

/// Written by `htpasswd` 2.4.71 (`-B -C 5`, `-m`, `-2`, `-5`), each for
/// the password `secret`.
const USERS: &str = "\
bcrypt:$2y$05$9lJZPSLHkuhKYsr6x9LPiuDMAvUrd2EfwzvsQIgJgTq5eQwCNOcIS
apr1:$apr1$Cf.IpkwU$ote1UrulhdpWQcRFj91k0.
sha256:$5$sxLhcfF3DxLcSJUU$VbajDhjseKs/OpbLsKN5MmaUKHQYKS4Va1N6YvLxv.0
sha512:$6$YGN0lW.1xyMyvPuk$jiNrJBtispC6.th9YOeEr9iH/wLmGl7fic7ROrUc2tMjqBNj8oOft4cG7v3Gz./K.JcdOqxXooYNcEJnegBBm/
";

/// `htpasswd -nb -m newcomer welcome`.
const NEWCOMER: &str = "newcomer:$apr1$EQ86Nxb6$gbkxWPLwbpp2Vii3lp2oD1\n";

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Authorization: Basic {token}")
}

/// A server whose `/admin/` asks for the users of `htpasswd`.
const ADMIN: &str = "server {
    listen 127.0.0.1:{port};
    root {dir}/site;
    location /admin/ {
        auth_basic team;
        auth_basic_user_file htpasswd;
    }
}
";

fn site(dir: &std::path::Path) {
    for d in ["site/admin/open", "site/public"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(dir.join("site/admin/index.html"), "team page").unwrap();
    std::fs::write(dir.join("site/admin/open/index.html"), "open page").unwrap();
    std::fs::write(dir.join("site/public/index.html"), "public page").unwrap();
    std::fs::write(dir.join("site/401.html"), "who are you?").unwrap();
    std::fs::write(dir.join("htpasswd"), USERS).unwrap();
}

#[test]
fn the_users_of_the_file_get_in_and_everyone_else_gets_401() {
    let up = upstream::start(|r| ok(&r.header("authorization").unwrap_or_default()));
    let template = format!(
        "server {{
    listen 127.0.0.1:{{port}};
    root {{dir}}/site;
    access_log {{dir}}/access.log;
    location /admin/ {{
        auth_basic \"Team \\\"A\\\"\";
        auth_basic_user_file htpasswd;
    }}
    location /admin/open/ {{
        auth_basic off;
    }}
    location /api/ {{
        auth_basic api;
        auth_basic_user_file htpasswd;
        proxy_pass {};
    }}
    location /kept-out/ {{
        deny all;
        auth_basic x;
        auth_basic_user_file htpasswd;
    }}
    location /paged/ {{
        auth_basic x;
        auth_basic_user_file htpasswd;
        error_page 401 /401.html;
    }}
}}
",
        up.addr()
    );
    let server = Server::start(&template, site);
    for user in ["bcrypt", "apr1", "sha256", "sha512"] {
        let r = server.get("/admin/", &[&basic(user, "secret")]);
        assert_eq!((r.status, r.text().as_str()), (200, "team page"), "{user}");
        let r = server.get("/admin/", &[&basic(user, "Secret")]);
        assert_eq!(r.status, 401, "{user} with a wrong password");
    }
    let r = server.get("/admin/", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"Team \\\"A\\\"\", charset=\"UTF-8\"")
    );
    assert_eq!(
        server.get("/admin/", &[&basic("nobody", "secret")]).status,
        401
    );
    assert_eq!(
        server.get("/admin/", &["Authorization: Bearer abc"]).status,
        401
    );
    assert_eq!(
        server.get("/admin/", &["Authorization: Basic %%%"]).status,
        401
    );
    // The same credentials again (answered from the worker's memory of
    // them) give the same answers.
    assert_eq!(
        server.get("/admin/", &[&basic("bcrypt", "secret")]).status,
        200
    );
    assert_eq!(
        server.get("/admin/", &[&basic("bcrypt", "Secret")]).status,
        401
    );
    // Not asked outside, nor where an inner block turns it off.
    assert_eq!(server.get("/public/", &[]).status, 200);
    assert_eq!(server.get("/admin/open/", &[]).text(), "open page");
    // A proxied location: the upstream is reached only with a password,
    // and gets the header as sent.
    assert_eq!(server.get("/api/x", &[]).status, 401);
    assert_eq!(up.count(), 0);
    let creds = basic("apr1", "secret");
    let r = server.get("/api/x", &[&creds]);
    assert_eq!(r.status, 200);
    assert_eq!(
        Some(r.text().as_str()),
        creds.strip_prefix("Authorization: ")
    );
    // A denied address gets 403 and no challenge.
    let r = server.get("/kept-out/", &[&basic("apr1", "secret")]);
    assert_eq!((r.status, r.header("www-authenticate")), (403, None));
    // error_page 401 keeps the challenge.
    let r = server.get("/paged/", &[]);
    assert_eq!((r.status, r.text().as_str()), (401, "who are you?"));
    assert!(r.header("www-authenticate").is_some());
    // The log names the user and never the password.
    let log = server.dir.join("access.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().count() >= 20 {
            break text;
        }
        assert!(Instant::now() < deadline, "access log:\n{text}");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(
        text.lines().any(|l| l.starts_with("127.0.0.1 - bcrypt [")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("127.0.0.1 - - [") && l.contains(" 401 "))
    );
    assert!(
        !text.contains("secret") && !text.contains("Basic"),
        "{text}"
    );
}

#[test]
fn a_saved_user_file_is_read_again() {
    let template = ADMIN;
    let server = Server::start(template, site);
    let newcomer = basic("newcomer", "welcome");
    assert_eq!(server.get("/admin/", &[&newcomer]).status, 401);
    std::fs::write(server.dir.join("htpasswd"), format!("{USERS}{NEWCOMER}")).unwrap();
    server.wait_for(Duration::from_secs(10), "the new user", || {
        server.get("/admin/", &[&newcomer]).status == 200
    });
    server.wait_for(Duration::from_secs(10), "the reload line", || {
        server.stderr().contains("auth_basic_user_file")
    });
    let err = server.stderr();
    assert!(err.contains("4 users") && err.contains("5 users"), "{err}");
    // A user taken out can no longer log in.
    std::fs::write(server.dir.join("htpasswd"), NEWCOMER).unwrap();
    server.wait_for(Duration::from_secs(10), "the user removed", || {
        server.get("/admin/", &[&basic("apr1", "secret")]).status == 401
    });
    assert_eq!(server.get("/admin/", &[&newcomer]).status, 200);
    // A missing file fails the reload; the last users stay.
    std::fs::remove_file(server.dir.join("htpasswd")).unwrap();
    server.wait_for(Duration::from_secs(10), "the failed reload", || {
        server.stderr().contains("cannot read the user file")
    });
    assert_eq!(server.get("/admin/", &[&newcomer]).status, 200);
}

#[test]
fn check_reports_user_file_problems_with_their_place_and_no_hash() {
    let dir = tempfile::tempdir().unwrap();
    let conf = "server {
    listen 127.0.0.1:8080;
    root .;
    location /a/ {
        auth_basic a;
        auth_basic_user_file users;
    }
    location /b/ {
        auth_basic b;
    }
    location /c/ {
        auth_basic c;
        auth_basic_user_file missing;
    }
}
";
    std::fs::write(dir.path().join("xps.conf"), conf).unwrap();
    std::fs::write(
        dir.path().join("users"),
        format!("# team\n{USERS}just-a-name\nplain:hunter2\nold:{{SHA}}5en6G6MezRroT3XKqkdPOmY/BfQ=\napr1:$apr1$x\n"),
    )
    .unwrap();
    let out = xps(dir.path(), &["--check", "xps.conf"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let e = &out.stderr;
    assert_contains_all(
        e,
        &[
            "warning: this line is not `user:hash`: it is left out\n --> users:6:1",
            "warning: user `plain` cannot log in: the password is not hashed in a format xps checks",
            " --> users:7:7",
            "warning: user `old` cannot log in: `{SHA}` (unsalted SHA-1) is not supported",
            " --> users:8:5",
            "warning: user `apr1` cannot log in: the hash is malformed",
            "error: `auth_basic` has no `auth_basic_user_file`\n --> xps.conf:9:20",
            "error: cannot read the user file `missing`: No such file or directory\n  --> xps.conf:13:30",
        ],
    );
    for secret in ["hunter2", "5en6G6", "$2y$05$9lJZ", "$apr1$x"] {
        assert!(!e.contains(secret), "{secret} printed:\n{e}");
    }
}

#[test]
fn a_client_trying_passwords_at_speed_is_slowed_and_others_are_not() {
    use crate::server::{connect_from, read_response, request};
    use std::io::Write;
    let template = &format!("workers 1;\n{ADMIN}");
    let server = Server::start(template, site);
    let ask = |from: [u8; 4], creds: &str| {
        let mut s = connect_from(from.into(), server.addr());
        s.write_all(request("GET", "/admin/", &[creds]).as_bytes())
            .unwrap();
        read_response(&mut s, false).expect("an answer")
    };
    let good = basic("bcrypt", "secret");
    assert_eq!(ask([127, 0, 0, 1], &good).status, 200);
    let mut statuses = Vec::new();
    for i in 0..40 {
        let r = ask([127, 0, 0, 1], &basic("bcrypt", &format!("guess{i}")));
        if r.status == 429 {
            assert_eq!(r.header("retry-after"), Some("1"));
        }
        statuses.push(r.status);
    }
    // The burst is ten new credentials (the good one took the first):
    // nine guesses are checked (401), then the address gets 429 while its
    // allowance comes back at five a second.
    assert!(statuses[..9].iter().all(|&s| s == 401), "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().all(|&s| s == 401 || s == 429),
        "{statuses:?}"
    );
    // Credentials already checked are not new: still 200. Another
    // address has its own allowance.
    assert_eq!(ask([127, 0, 0, 1], &good).status, 200);
    assert_eq!(ask([127, 0, 0, 2], &basic("apr1", "secret")).status, 200);
}

#[test]
fn a_user_file_ending_in_a_bare_colon_is_reported_at_the_colon() {
    // Found by fuzzing: the empty hash after the last `:` of a file with
    // no newline was reported one byte past the end of the file.
    let dir = tempfile::tempdir().unwrap();
    let conf = "server {
    listen 127.0.0.1:8080;
    root .;
    auth_basic a;
    auth_basic_user_file users;
}
";
    std::fs::write(dir.path().join("xps.conf"), conf).unwrap();
    std::fs::write(dir.path().join("users"), format!("{USERS}last:")).unwrap();
    let out = xps(dir.path(), &["--check", "xps.conf"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "warning: user `last` cannot log in: the password hash is empty\n --> users:5:5"
        ),
        "{}",
        out.stderr
    );
}
