//! `sf_policy`: the SysFlow policy engine of the reference processor (`sf-processor`
//! v0.7.0, `core/policyengine`), for the `sf-handler-policy` handler.
//!
//! Policies are the reference's Falco-style files: `rule`s, `macro`s, `list`s, drop
//! `filter`s, read with the reference's grammar ([`lexer`], [`parser`]), resolved and
//! compiled once per record type ([`compiler`]) into conditions evaluated without
//! allocating ([`ir`]) against the attributes of a record and its context ([`attrs`],
//! [`ancestry`]).
//!
//! ```
//! use sf_policy::compiler::{compile_sources, Options};
//! let src = "- rule: Shell\n  desc: a shell ran\n  condition: sf.type = PE and sf.proc.name in (bash, sh)\n  priority: high\n";
//! let set = compile_sources(&[("demo.yaml".into(), src.into())], Options::default()).unwrap();
//! assert_eq!(set.rules[0].policy.id, "Shell");
//! assert_eq!(set.rules[0].policy.priority, 3);
//! ```
#![deny(missing_docs)]

pub mod ancestry;
pub mod attrs;
pub mod compiler;
pub mod handler;
pub mod ir;
pub mod jsonpath;
pub mod lexer;
pub mod parser;
