//! Headless Chromium driven through the DevTools protocol over a pipe
//! (`--remote-debugging-pipe`: commands on the browser's fd 3, answers on its fd 4, each message
//! JSON ending in a NUL byte), so a test can click, type and read the page with only std.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Headless Chromium, as installed by `scripts/setup.sh`, if any.
pub fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .map(|name| Path::new("/usr/bin").join(name))
        .find(|p| p.exists())
}

/// Chromium for a browser test, or `None` to skip it: allowed only outside CI, where
/// `scripts/setup.sh` installs Chromium and a missing browser is a failure.
pub fn chromium_or_skip() -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "no Chromium at /usr/bin/chromium under CI=true; scripts/setup.sh should have installed it"
        );
        eprintln!("SKIPPED: no Chromium at /usr/bin/chromium; install it with scripts/setup.sh");
    }
    found
}

/// A browser with one page.
pub struct Browser {
    child: Child,
    commands: ChildStdin,
    messages: Receiver<Value>,
    next_id: u64,
    session: String,
    /// Console errors and uncaught exceptions seen so far.
    pub errors: Vec<String>,
}

impl Browser {
    /// Starts `browser` headless with a fresh profile under `profile`.
    pub fn start(browser: &Path, profile: &Path) -> Self {
        // The shell hands the browser our pipes as fds 3 (commands) and 4 (answers), and points
        // its own stdin and stdout elsewhere so nothing else reaches the pipes.
        let script = format!(
            "exec '{}' --headless --no-sandbox --disable-gpu --no-first-run --disable-sync \
             --disable-background-networking --disable-component-update --disable-extensions \
             --remote-debugging-pipe --user-data-dir='{}' --window-size=1280,1600 \
             3<&0 4>&1 0</dev/null 1>&2",
            browser.display(),
            profile.display()
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            // Chromium's singleton socket folder goes with the profile, not into /tmp.
            .env("TMPDIR", profile)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the browser starts");
        let commands = child.stdin.take().unwrap();
        let mut answers = BufReader::new(child.stdout.take().unwrap());
        let (tx, messages) = channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            while answers.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
                buf.pop();
                if let Ok(v) = serde_json::from_slice::<Value>(&buf)
                    && tx.send(v).is_err()
                {
                    break;
                }
                buf.clear();
            }
        });
        let mut b = Self {
            child,
            commands,
            messages,
            next_id: 0,
            session: String::new(),
            errors: Vec::new(),
        };
        let target = b.call("Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"].as_str().unwrap().to_owned();
        let attached = b.call(
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        b.session = attached["sessionId"].as_str().unwrap().to_owned();
        for domain in ["Runtime.enable", "Page.enable", "Log.enable"] {
            b.call(domain, json!({}));
        }
        b
    }

    /// Sends one command (to the page once attached) and waits for its answer.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.commands.write_all(&bytes).unwrap();
        self.commands.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self
                .messages
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {method} within 60 s"));
            if m["id"] == json!(id) {
                if let Some(e) = m.get("error") {
                    panic!("{method} failed: {e}");
                }
                return m["result"].clone();
            }
            self.note(&m);
        }
    }

    /// Keeps console errors and exceptions for the test to assert on.
    fn note(&mut self, event: &Value) {
        let p = &event["params"];
        match event["method"].as_str() {
            Some("Runtime.exceptionThrown") => self
                .errors
                .push(p["exceptionDetails"]["exception"]["description"].to_string()),
            Some("Runtime.consoleAPICalled") if p["type"] == "error" => {
                self.errors.push(p["args"].to_string())
            }
            Some("Log.entryAdded") if p["entry"]["level"] == "error" => {
                self.errors.push(p["entry"]["text"].to_string())
            }
            _ => {}
        }
    }

    /// The value of a JavaScript expression (awaited if it is a promise).
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expression} threw: {e}");
        }
        r["result"]["value"].clone()
    }

    pub fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
    }

    /// Waits until `expression` is true (polling), or fails the test after `secs`.
    pub fn wait_for(&mut self, expression: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.eval(&format!("Boolean({expression})")) == json!(true) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let body = self.eval("document.body ? document.body.innerText.slice(0, 2000) : ''");
        panic!("timed out waiting for {expression}; page: {body}");
    }

    /// A PNG of the page as it is now.
    pub fn screenshot(&mut self, path: &Path) {
        use base64::Engine;
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
