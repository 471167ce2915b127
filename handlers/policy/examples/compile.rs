fn main() {
    for p in std::env::args().skip(1) {
        match sf_policy::compiler::compile_path(p.as_ref(), Default::default()) {
            Ok(s) => {
                println!("{p}: {:?}", s.counts);
                for d in &s.diagnostics {
                    println!("  {:?} {d}", d.level);
                }
                for (i, k) in sf_policy::attrs::KINDS.iter().enumerate() {
                    let pr = &s.programs[i];
                    println!(
                        "  {k:?}: filters {} ({} tests), rules {} ({} tests)",
                        pr.filters.len(),
                        pr.filters.iter().map(|n| n.size()).sum::<usize>(),
                        pr.rules.len(),
                        pr.rules.iter().map(|(_, n)| n.size()).sum::<usize>()
                    );
                }
            }
            Err(e) => println!("{p}: ERROR {e}"),
        }
    }
}
