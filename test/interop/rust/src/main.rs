//! The ttrpc-rust 0.8 side of the ttrpc-es interop suite.
//!
//!   ttrpc-rust-peer server --socket PATH [--runtime current|multi]
//!     serves ttrpces.interop.v1.Interop; prints READY; exits when stdin closes.
//!   ttrpc-rust-peer client --socket PATH --scenario NAME [--runtime ..] [--size N] [--count N]
//!     runs one scenario against an Interop server and prints one JSON line.
//!
//! `--runtime` picks Tokio's current-thread or multi-thread runtime: ttrpc-rust has
//! races on the latter that the tests name (ttrpc-rust#311).
mod client;
mod json;
mod server;
mod protos {
    include!(concat!(env!("OUT_DIR"), "/protos/mod.rs"));
    pub mod interop_ttrpc;
}

use std::collections::HashMap;

/// `--name value` pairs after the mode.
pub struct Args(HashMap<String, String>);

impl Args {
    fn parse(argv: &[String]) -> Args {
        let mut map = HashMap::new();
        for pair in argv.chunks(2) {
            let key = pair[0].strip_prefix("--").unwrap_or_else(|| usage(&format!("bad argument {}", pair[0])));
            let value = pair.get(1).unwrap_or_else(|| usage(&format!("--{key} needs a value")));
            map.insert(key.to_string(), value.clone());
        }
        Args(map)
    }

    pub fn get(&self, key: &str) -> &str {
        self.0.get(key).map(String::as_str).unwrap_or_else(|| usage(&format!("--{key} is required")))
    }

    pub fn number(&self, key: &str, default: u64) -> u64 {
        match self.0.get(key) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| usage(&format!("--{key} must be a number"))),
        }
    }
}

fn usage(why: &str) -> ! {
    eprintln!("ttrpc-rust-peer: {why}\nusage: ttrpc-rust-peer server|client --socket PATH [--runtime current|multi] [--scenario NAME]");
    std::process::exit(2)
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((mode, rest)) = argv.split_first() else { usage("no mode") };
    let args = Args::parse(rest);
    let runtime = match args.0.get("runtime").map(String::as_str).unwrap_or("current") {
        "current" => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        "multi" => tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build(),
        other => usage(&format!("unknown runtime {other}")),
    }
    .expect("tokio runtime");
    match mode.as_str() {
        "server" => runtime.block_on(server::serve(args.get("socket"))),
        "client" => {
            let line = runtime.block_on(client::run(&args));
            println!("{line}");
        }
        other => usage(&format!("unknown mode {other}")),
    }
}
