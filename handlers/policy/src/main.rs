//! `sf-handler-policy`: the reference's policy engine (`"processor": "policyengine"`) as a
//! handler. See the crate README for the block's keys, the language and the differences
//! from the reference.
//!
//! `sf-handler-policy --check [--strict] PATH` compiles the policies at `PATH` (a file or a
//! directory), prints what it found and every warning, and exits 0, or 2 on an error.

use std::process::ExitCode;

fn check(args: &[String]) -> ExitCode {
    let strict = args.iter().any(|a| a == "--strict");
    let paths: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    if paths.is_empty() {
        eprintln!("usage: sf-handler-policy --check [--strict] POLICIES...");
        return ExitCode::from(2);
    }
    let mut ok = true;
    for p in paths {
        match sf_policy::compiler::compile_path(p.as_ref(), sf_policy::compiler::Options { strict })
        {
            Ok(set) => {
                let (files, rules, macros, lists, filters) = set.counts;
                println!(
                    "{p}: {files} files, {rules} rules, {macros} macros, {lists} lists, {filters} filters, {} warnings",
                    set.diagnostics.len()
                );
                for d in &set.diagnostics {
                    println!(
                        "{}: {d}",
                        match d.level {
                            sf_policy::compiler::Level::Warning => "warning",
                            sf_policy::compiler::Level::Error => "error",
                        }
                    );
                }
            }
            Err(e) => {
                eprintln!("{p}: {e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--check") {
        return check(&args[1..]);
    }
    handler_sdk::run(sf_policy::handler::PolicyHandler::default())
}
