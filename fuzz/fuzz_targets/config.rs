//! Configuration: a TOML file and the `WAGATE_*` environment layer through `config::load_from`
//! (the function `wagate run` and `wagate config check` use). The input is the file text,
//! then after a NUL byte `NAME=value` lines for the environment.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (file, env) = text.split_once('\0').unwrap_or((text, ""));
    let env: Vec<(String, String)> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(file.as_bytes()).expect("write");
    match wagate::config::load_from(Some(f.path()), env.clone()) {
        Ok(cfg) => {
            let _ = cfg.db_path();
        }
        Err(e) => {
            let _ = e.to_string();
            let _ = e.key();
        }
    }
    // The environment alone (no file: the default path does not exist here).
    let _ = wagate::config::load_from(None, env);
});
