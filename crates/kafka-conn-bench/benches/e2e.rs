//! `cargo bench -p kafka-conn-bench --bench e2e`: the end-to-end benchmark,
//! run from `just bench` (which starts the brokers). `cargo test
//! --all-targets` builds this without `--bench`: then it does nothing.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench" || a == "--child") {
        println!("e2e: not run without --bench (cargo bench runs it)");
        return;
    }
    std::process::exit(kafka_conn_bench::main(args));
}
